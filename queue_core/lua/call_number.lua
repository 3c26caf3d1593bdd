-- call_number.lua: a window calls a waiting number out of turn, completing its current ticket first.
-- KEYS: common (see _lib.lua), then
--   KEYS[KO+1] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[AO+1] window id   ARGV[AO+2] the window's group ids, comma-separated   ARGV[AO+3] number
--   then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[AO + 1])
if w.status ~= 'open' then return err('window_not_open') end
local id = redis.call('HGET', KEYS[KO + 1], ARGV[AO + 3])
local t = id and load_ticket(id)
if not is_waiting(t) then return err('number_not_waiting') end
if not group_set(ARGV[AO + 2])[t.group] then return err('group_not_served') end
-- A number of an ended day is not waiting (it is expired, and stays so).
if stale_member(t.m) then return err('number_not_waiting') end
local cur = current_ticket(w)
if cur then finish(w, cur, 'completed') end
call_ticket(t, w, 'out_of_turn', earlier_waiting(ARGV[AO + 2], t))
notify_near(t.group)
audit('call', w.id, t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
