-- issue.lua: issue a ticket at a kiosk.
-- KEYS: common (see _lib.lua), then
--   KEYS[KO+1] counter:<day>:<prefix>   KEYS[KO+2] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[AO+1] ticket id   ARGV[AO+2] service   ARGV[AO+3] group   ARGV[AO+4] prefix
--   ARGV[AO+5] priority    ARGV[AO+6] effective time (ms)
--   ARGV[AO+7] '1' when the calendar lets the kiosk issue now
--   then the group ids
local r = replay()
if r then return r end
local closed = hall_refusal(ARGV[AO + 7])
if closed then return closed end
local t = create_ticket(KEYS[KO + 1], KEYS[KO + 2], ARGV[AO + 1], ARGV[AO + 2], ARGV[AO + 3],
  ARGV[AO + 4], ARGV[AO + 5], ARGV[AO + 6], '')
audit('issue', '', t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
