-- forget.lua: delete archived tickets from a hall's tickets hash, each only if
-- it is still exactly what was archived. A ticket changed since the sweep read
-- it (a visitor's late rating) stays, and the next sweep archives it again.
-- KEYS[1] tickets   hash id -> ticket JSON
-- ARGV    id1, json1, id2, json2, ... (the values as the sweep read them)
-- Returns the number of tickets deleted.
local deleted = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    deleted = deleted + 1
  end
end
return deleted
