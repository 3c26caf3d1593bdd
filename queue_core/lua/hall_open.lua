-- hall_open.lua: a manager lifts a close (hall_close.lua) before the next span.
-- The calendar still rules: outside its hours the hall stays closed.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] '1' when the calendar has the hall open now, then the group ids
local r = replay()
if r then return r end
local was = redis.call('HGET', K_DAY, 'closed_until')
redis.call('HDEL', K_DAY, 'closed_until')
if ARGV[AO + 1] == '1' then announce_hall('open', true) end
if was then audit('open_hall', '', '') end
remember('D:')
return cjson.encode({day = day_state(), replayed = false, out = OUT})
