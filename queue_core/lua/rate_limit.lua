-- rate_limit.lua: count one request against a fixed-window limit (not hall state: no event).
-- KEYS[1]  limit:<kind>:<window>:<who>   INCR counter of one caller's requests in one window
-- ARGV[1]  the limit: requests allowed in the window
-- ARGV[2]  how long the counter outlives its window's start, in ms (its PEXPIRE)
-- A request within the limit is counted; one past it is not (the count stays
-- at the limit, so a client that keeps hammering never extends its window).
-- Returns 1 when the request may go on, 0 when it is refused.
local limit = tonumber(ARGV[1])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= limit then
  return 0
end
if redis.call('INCR', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
