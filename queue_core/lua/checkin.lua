-- checkin.lua: check in an appointment, issuing its ticket.
-- KEYS: common (see _lib.lua), then
--   KEYS[9]  appointments   KEYS[10] counter:<day>:<prefix>   KEYS[11] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[5] appointment code   ARGV[6] start (ms) the caller decided on
--   ARGV[7] ticket id   ARGV[8] service   ARGV[9] group   ARGV[10] prefix
--   ARGV[11] priority   ARGV[12] effective time (ms)
--   then the group ids
local r = replay()
if r then return r end
local raw = redis.call('HGET', KEYS[9], ARGV[5])
if not raw then return err('appointment_not_found') end
local a = cjson.decode(raw)
if a.ticket then return err('already_checked_in') end
-- The caller chose the class from the start it read; a changed booking must be re-read.
if tostring(a.start) ~= ARGV[6] then return err('appointment_changed') end
local t = create_ticket(KEYS[10], KEYS[11], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[5])
a.ticket = t.id
a.checked_in = NOW
redis.call('HSET', KEYS[9], ARGV[5], cjson.encode(a))
remember('T:' .. t.id)
return ticket_reply(t, false)
