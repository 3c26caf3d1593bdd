-- outbox_take.lua: a sender takes deliveries to post: new ones (read
-- through the consumer group, so each goes to one sender) and those whose
-- retry time has come, each under a lease (its due time moved to now +
-- lease) so no other sender takes it while this one posts. A sender that
-- dies holding some lets their lease run out and another takes them.
-- KEYS[1] outbox (stream)   KEYS[2] outbox:due (zset)   KEYS[3] outbox:tries (hash)
-- KEYS[4] tickets (hash)
-- ARGV[1] consumer group   ARGV[2] this sender's consumer name   ARGV[3] now (epoch ms)
-- ARGV[4] lease (ms)       ARGV[5] at most this many deliveries
-- Returns JSON [{id, f: {field: value}, tries, status}], status the ticket's
-- current status ('' when it is gone).
local K_OUTBOX, K_DUE, K_TRIES, K_TICKETS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer = ARGV[1], ARGV[2]
local now, lease, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function fields_of(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end

local function status_of(id)
  local raw = redis.call('HGET', K_TICKETS, id)
  if not raw then return '' end
  return cjson.decode(raw).status
end

local out = {}
local function take(id, flat)
  redis.call('ZADD', K_DUE, now + lease, id)
  local f = fields_of(flat)
  out[#out + 1] = {
    id = id, f = f, status = status_of(f.ticket),
    tries = tonumber(redis.call('HGET', K_TRIES, id) or '0'),
  }
end

-- Retries first: they have waited longest.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_DUE, '-inf', now, 'LIMIT', 0, limit)) do
  local entry = redis.call('XRANGE', K_OUTBOX, id, id)[1]
  if entry then
    redis.call('XCLAIM', K_OUTBOX, group, consumer, 0, id, 'JUSTID')
    take(id, entry[2])
  else
    redis.call('ZREM', K_DUE, id)  -- settled meanwhile
    redis.call('HDEL', K_TRIES, id)
  end
end

if #out < limit then
  if redis.call('EXISTS', K_OUTBOX) == 0 then return cjson.encode(out) end
  local args = {'XREADGROUP', 'GROUP', group, consumer, 'COUNT', limit - #out, 'STREAMS', K_OUTBOX, '>'}
  local ok, read = pcall(redis.call, unpack(args))
  if not ok then  -- the hall's first delivery: its group starts at the stream's start
    redis.call('XGROUP', 'CREATE', K_OUTBOX, group, '0')
    read = redis.call(unpack(args))
  end
  if read and read[1] then
    for _, entry in ipairs(read[1][2]) do take(entry[1], entry[2]) end
  end
end
return cjson.encode(out)
