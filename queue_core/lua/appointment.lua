-- appointment.lua: book an appointment (no event: screens show nothing until check-in).
-- KEYS: common (see _lib.lua), then
--   KEYS[9] appointments
--   then the group queues
-- ARGV: common, then
--   ARGV[5] code   ARGV[6] service   ARGV[7] start (ms)
--   then the group ids
local r = replay()
if r then return r end
local a = {code = ARGV[5], service = ARGV[6], start = tonumber(ARGV[7])}
if redis.call('HSETNX', KEYS[9], a.code, cjson.encode(a)) == 0 then
  return err('code_taken')
end
remember('A:' .. a.code)
return cjson.encode({a = a, replayed = false, out = OUT})
