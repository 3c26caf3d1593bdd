-- presence.lua: record that screens are connected (not hall state: no event).
-- KEYS[1]        screens   sorted set screen id -> last seen ms
-- KEYS[2 ..]     screen:<id>, one per screen, same order as the ARGV screens
-- ARGV[1]        now in epoch ms
-- ARGV[2]        TTL of a presence key in seconds
-- ARGV[3]        forget screens not seen for this many ms
-- ARGV[4 ..]     pairs: screen id, presence JSON (one pair per KEYS[2 ..])
-- Returns the number of screens recorded.
local now, ttl, forget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS - 1
for i = 1, n do
  local id, doc = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  redis.call('SET', KEYS[1 + i], doc, 'EX', ttl)
  redis.call('ZADD', KEYS[1], now, id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - forget)
return n
