-- parked.lua: the hall's parked tickets, earliest parked first (writes nothing).
-- KEYS[1] parked   KEYS[2] tickets
-- Returns JSON [ticket, ...].
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
if #ids > 0 then
  for _, doc in ipairs(redis.call('HMGET', KEYS[2], unpack(ids))) do
    if doc then out[#out + 1] = cjson.decode(doc) end
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
