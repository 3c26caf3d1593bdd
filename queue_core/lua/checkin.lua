-- checkin.lua: check in an appointment, issuing its ticket.
-- KEYS: common (see _lib.lua), then
--   KEYS[13]  appointments   KEYS[14] counter:<day>:<prefix>   KEYS[15] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[7] appointment code   ARGV[8] start (ms) the caller decided on
--   ARGV[9] ticket id   ARGV[10] service   ARGV[11] group   ARGV[12] prefix
--   ARGV[13] priority   ARGV[14] effective time (ms)
--   then the group ids
local r = replay()
if r then return r end
local raw = redis.call('HGET', KEYS[13], ARGV[7])
if not raw then return err('appointment_not_found') end
local a = cjson.decode(raw)
if a.ticket then return err('already_checked_in') end
-- The caller chose the class from the start it read; a changed booking must be re-read.
if tostring(a.start) ~= ARGV[8] then return err('appointment_changed') end
local t = create_ticket(KEYS[14], KEYS[15], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[7])
a.ticket = t.id
a.checked_in = NOW
redis.call('HSET', KEYS[13], ARGV[7], cjson.encode(a))
remember('T:' .. t.id)
return ticket_reply(t, false)
