-- note_estimate.lua: keep the wait estimate a ticket was given at issue, so
-- that its call can measure the estimate against the actual wait. Only for a
-- ticket still waiting and never transferred, and only the first estimate.
-- KEYS[1] tickets   KEYS[2] estimates
-- ARGV[1] ticket id   ARGV[2] estimate JSON {c, lo, hi} in ms
-- Returns 1 when kept, 0 otherwise.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local t = cjson.decode(raw)
if t.status ~= 'waiting' or t.transfers then return 0 end
return redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
