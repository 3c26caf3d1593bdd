-- issue.lua: issue a ticket at a kiosk.
-- KEYS: common (see _lib.lua), then
--   KEYS[13]  counter:<day>:<prefix>
--   KEYS[14] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[7] ticket id   ARGV[8] service   ARGV[9] group   ARGV[10] prefix
--   ARGV[11] priority    ARGV[12] effective time (ms)
--   then the group ids
local r = replay()
if r then return r end
local t = create_ticket(KEYS[13], KEYS[14], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], '')
remember('T:' .. t.id)
return ticket_reply(t, false)
