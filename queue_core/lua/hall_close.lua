-- hall_close.lua: a manager closes the hall now (a typhoon, a power cut).
-- Every window closes (its ticket completed), every waiting and parked
-- ticket expires, and new tickets are refused until `closed_until` (the
-- next span start) or hall_open.lua, whichever comes first.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] closed until (epoch ms), then the group ids
local r = replay()
if r then return r end
redis.call('HSET', K_DAY, 'closed_until', ARGV[AO + 1])
local flat = redis.call('HGETALL', K_WINDOWS)
for i = 1, #flat, 2 do
  local w = cjson.decode(flat[i + 1])
  if w.status ~= 'closed' then set_window_status(w, 'closed') end
end
expire_before(NOW + 1)
announce_hall('closed', true)
audit('close_hall', '', '')
remember('D:')
return cjson.encode({day = day_state(), replayed = false, out = OUT})
