-- call_number.lua: a window calls a waiting number out of turn, completing its current ticket first.
-- KEYS: common (see _lib.lua), then
--   KEYS[13] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[7] window id   ARGV[8] the window's group ids, comma-separated   ARGV[9] number
--   then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[7])
if w.status ~= 'open' then return err('window_not_open') end
local id = redis.call('HGET', KEYS[13], ARGV[9])
local t = id and load_ticket(id)
if not is_waiting(t) then return err('number_not_waiting') end
if not group_set(ARGV[8])[t.group] then return err('group_not_served') end
local cur = current_ticket(w)
if cur then finish(w, cur, 'completed') end
call_ticket(t, w, QUEUE[t.group])
remember('T:' .. t.id)
return ticket_reply(t, false)
