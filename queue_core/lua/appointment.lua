-- appointment.lua: book an appointment (no event: screens show nothing until check-in).
-- KEYS: common (see _lib.lua), then
--   KEYS[13] appointments
--   then the group queues
-- ARGV: common, then
--   ARGV[7] code   ARGV[8] service   ARGV[9] start (ms)
--   then the group ids
local r = replay()
if r then return r end
local a = {code = ARGV[7], service = ARGV[8], start = tonumber(ARGV[9])}
if redis.call('HSETNX', KEYS[13], a.code, cjson.encode(a)) == 0 then
  return err('code_taken')
end
remember('A:' .. a.code)
return cjson.encode({a = a, replayed = false, out = OUT})
