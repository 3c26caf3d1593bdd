-- resume.lua: a window calls a parked ticket back, completing its own current
-- ticket first. Any open window serving the ticket's group may; when two try
-- at once, one calls it and the other finds it no longer parked.
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
if not t or t.status ~= 'parked' or (t.parked or 0) < STALE then return err('number_not_parked') end
if not group_set(ARGV[AO + 2])[t.group] then return err('group_not_served') end
local cur = current_ticket(w)
if cur then finish(w, cur, 'completed') end
redis.call('ZREM', K_PARKED, t.id)
t.parked = nil
t.parked_at = nil
t.recalls = nil
seat_for(t, w, 'resume', earlier_waiting(ARGV[AO + 2], t), {resumed = '1'})
audit('resume', w.id, t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
