-- outbox_settle.lua: what became of one delivery a sender posted.
-- 'done' (delivered, or no longer worth sending): acknowledged and deleted,
-- with where it was for. 'retry': posted again at ARGV[4]. 'dead' (given up,
-- or refused by the gateway): moved to the dead letters without `to`.
-- A delivery settled already (by a sender whose lease had run out) is left alone.
-- KEYS[1] outbox (stream)   KEYS[2] outbox:due (zset)   KEYS[3] outbox:tries (hash)
-- KEYS[4] outbox:dead (stream)
-- ARGV[1] consumer group   ARGV[2] entry id   ARGV[3] 'done' | 'retry' | 'dead'
-- ARGV[4] retry at (epoch ms, 'retry')   ARGV[5] why ('dead')   ARGV[6] dead letters kept
-- Returns 1 when it settled the delivery, 0 when it was settled already.
local K_OUTBOX, K_DUE, K_TRIES, K_DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, id, how = ARGV[1], ARGV[2], ARGV[3]
local entry = redis.call('XRANGE', K_OUTBOX, id, id)[1]
if not entry then
  redis.call('ZREM', K_DUE, id)
  redis.call('HDEL', K_TRIES, id)
  return 0
end
if how == 'retry' then
  redis.call('HINCRBY', K_TRIES, id, 1)
  redis.call('ZADD', K_DUE, tonumber(ARGV[4]), id)
  return 1
end
if how == 'dead' then
  local kept = {'id', id, 'why', ARGV[5], 'tries', redis.call('HGET', K_TRIES, id) or '0'}
  local flat = entry[2]
  for i = 1, #flat, 2 do
    if flat[i] ~= 'to' and flat[i] ~= 'ticket' then
      kept[#kept + 1] = flat[i]
      kept[#kept + 1] = flat[i + 1]
    end
  end
  redis.call('XADD', K_DEAD, 'MAXLEN', '~', ARGV[6], '*', unpack(kept))
end
redis.call('XACK', K_OUTBOX, group, id)
redis.call('XDEL', K_OUTBOX, id)
redis.call('ZREM', K_DUE, id)
redis.call('HDEL', K_TRIES, id)
return 1
