-- checkin.lua: check in an appointment, issuing its ticket.
-- KEYS: common (see _lib.lua), then
--   KEYS[KO + 1]  appointments   KEYS[KO + 2] counter:<day>:<prefix>   KEYS[KO + 3] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[AO + 1] appointment code   ARGV[AO + 2] start (ms) the caller decided on
--   ARGV[AO + 3] ticket id   ARGV[AO + 4] service   ARGV[AO + 5] group   ARGV[AO + 6] prefix
--   ARGV[AO + 7] priority   ARGV[AO + 8] effective time (ms)
--   ARGV[AO + 9] '1' when the calendar lets the kiosk issue now
--   then the group ids
local r = replay()
if r then return r end
local closed = hall_refusal(ARGV[AO + 9])
if closed then return closed end
local raw = redis.call('HGET', KEYS[KO + 1], ARGV[AO + 1])
if not raw then return err('appointment_not_found') end
local a = cjson.decode(raw)
if a.ticket then return err('already_checked_in') end
-- The caller chose the class from the start it read; a changed booking must be re-read.
if tostring(a.start) ~= ARGV[AO + 2] then return err('appointment_changed') end
local t = create_ticket(KEYS[KO + 2], KEYS[KO + 3], ARGV[AO + 3], ARGV[AO + 4], ARGV[AO + 5], ARGV[AO + 6], ARGV[AO + 7], ARGV[AO + 8], ARGV[AO + 1])
a.ticket = t.id
a.checked_in = NOW
redis.call('HSET', KEYS[KO + 1], ARGV[AO + 1], cjson.encode(a))
audit('check_in', '', t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
