-- day_boundary.lua: pass one calendar boundary (a span's start or end, or
-- local midnight), once however many replicas try: the first to get here
-- records it in `done`, the others find it passed and change nothing.
-- Passing the latest boundary does all that the missed ones would have:
-- tickets that joined before the latest day end expire, tickets still
-- called from before local midnight are finished, a manager's close that
-- has run out is lifted, and a `hall` event tells screens of a change.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then
--   ARGV[AO+1] the boundary (epoch ms)   ARGV[AO+2] '1' if a span is in force after it
--   ARGV[AO+3] the latest day end at or before it (ms)   ARGV[AO+4] its local midnight (ms)
--   then the group ids
-- Returns {"day": the day hash, "passed": bool, "expired": n}.
local at = tonumber(ARGV[AO + 1])
local done = tonumber(redis.call('HGET', K_DAY, 'done') or '0')
if at <= done then return cjson.encode({day = day_state(), passed = false, expired = 0, out = OUT}) end
redis.call('HSET', K_DAY, 'done', at)
local day_end = tonumber(ARGV[AO + 3])
local expired = 0
local through = tonumber(redis.call('HGET', K_DAY, 'expired_through') or '0')
if day_end > through then
  expired = expire_before(day_end)
  redis.call('HSET', K_DAY, 'expired_through', day_end)
end
-- A ticket still called from an earlier day: its clerk forgot to finish it.
-- It is completed as of the day's end (or its call, if later), and teaches
-- the learned service times nothing: its length is not a visit's.
local midnight = tonumber(ARGV[AO + 4])
local flat = redis.call('HGETALL', K_WINDOWS)
for i = 1, #flat, 2 do
  local w = cjson.decode(flat[i + 1])
  local t = current_ticket(w)
  if t and t.issued < midnight then
    t.status = 'completed'
    t.done = math.max(t.called or 0, day_end)
    t.closed_by_day = true
    save_ticket(t)
    release_person(t, false)
    w.ticket = nil
    save_window(w)
    emit('completed', t, w.id)
  end
end
if day_end > through then sweep_persons() end
local until_ms = tonumber(redis.call('HGET', K_DAY, 'closed_until') or '')
if until_ms and until_ms <= at then
  redis.call('HDEL', K_DAY, 'closed_until')
  until_ms = nil
end
local open = ARGV[AO + 2] == '1' and not until_ms
announce_hall(open and 'open' or 'closed')
return cjson.encode({day = day_state(), passed = true, expired = expired, out = OUT})
