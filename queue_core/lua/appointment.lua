-- appointment.lua: book an appointment (no event: screens show nothing until check-in).
-- KEYS: common (see _lib.lua), then
--   KEYS[KO + 1] appointments
--   then the group queues
-- ARGV: common, then
--   ARGV[AO + 1] code   ARGV[AO + 2] service   ARGV[AO + 3] start (ms)
--   then the group ids
local r = replay()
if r then return r end
local a = {code = ARGV[AO + 1], service = ARGV[AO + 2], start = tonumber(ARGV[AO + 3])}
if redis.call('HSETNX', KEYS[KO + 1], a.code, cjson.encode(a)) == 0 then
  return err('code_taken')
end
audit('book_appointment', '', '')
remember('A:' .. a.code)
return cjson.encode({a = a, replayed = false, out = OUT})
