-- issue.lua: issue a ticket at a kiosk.
-- KEYS: common (see _lib.lua), then
--   KEYS[9]  counter:<day>:<prefix>
--   KEYS[10] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[5] ticket id   ARGV[6] service   ARGV[7] group   ARGV[8] prefix
--   ARGV[9] priority    ARGV[10] effective time (ms)
--   then the group ids
local r = replay()
if r then return r end
local t = create_ticket(KEYS[9], KEYS[10], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], '')
remember('T:' .. t.id)
return ticket_reply(t, false)
