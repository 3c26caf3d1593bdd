-- presence.lua: record that named screens are connected (not hall state: no event).
-- KEYS[1]          screens   sorted set screen id -> last seen ms, the hall's named screens
-- KEYS[2 .. 1+2n]  per screen, in the order of the ARGV screens:
--                  screen:<id> (its presence JSON), screens-of:<owner> (the sorted set of
--                  the screens of the credential it connected with)
-- ARGV[1]          now in epoch ms
-- ARGV[2]          TTL of a presence key in seconds
-- ARGV[3]          forget screens not seen for this many ms
-- ARGV[4]          at most this many screens in the hall's set
-- ARGV[5]          at most this many screens in one owner's set
-- ARGV[6 ..]       pairs: screen id, presence JSON (one pair per screen)
-- A screen already in the hall's set is refreshed whatever the caps; a new
-- one only while neither its hall's nor its owner's set is full (else it is
-- not recorded: the screen still gets its frames).
-- Returns {recorded, not recorded}.
local now, ttl, forget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local hall_cap, owner_cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local horizon = now - forget
local hall = KEYS[1]
redis.call('ZREMRANGEBYSCORE', hall, '-inf', horizon)
local in_hall = redis.call('ZCARD', hall)
local pruned = {}
local recorded, refused = 0, 0
for i = 1, (#KEYS - 1) / 2 do
  local id, doc = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  local key, owner = KEYS[2 * i], KEYS[2 * i + 1]
  if not pruned[owner] then
    redis.call('ZREMRANGEBYSCORE', owner, '-inf', horizon)
    pruned[owner] = true
  end
  local known = redis.call('ZSCORE', hall, id)
  if known or (in_hall < hall_cap and redis.call('ZCARD', owner) < owner_cap) then
    if not known then
      in_hall = in_hall + 1
    end
    redis.call('SET', key, doc, 'EX', ttl)
    redis.call('ZADD', hall, now, id)
    redis.call('ZADD', owner, now, id)
    redis.call('PEXPIRE', owner, forget)
    recorded = recorded + 1
  else
    refused = refused + 1
  end
end
return {recorded, refused}
