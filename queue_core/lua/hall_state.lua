-- hall_state.lua: what the hall monitor needs, read atomically (writes nothing):
-- the windows with their current tickets, the head of every queue, today's
-- figures, the services' recent visit times and the calls of the last hour.
-- KEYS[1] seq   KEYS[2] tickets   KEYS[3] windows   KEYS[4] by_service
--   KEYS[5] stats:<today>   KEYS[6] svc_times   KEYS[7] waits   KEYS[8] day   KEYS[9] parked
--   KEYS[10] dispatch   KEYS[11 ..] queue:<group>, one per group, same order as the group ids
-- ARGV[1] how many tickets to read from the head of each group's call order
-- ARGV[2] epoch ms: calls before this are not returned
-- ARGV[3] the hall's rule   ARGV[4], ARGV[5] its ratio (normal, priority)
-- ARGV[6 ..] group ids
-- Returns JSON {"seq", "windows": {id: window}, "tickets": {id: ticket at a window},
--   "services": {id: waiting}, "stats": {field: n}, "svc_times": {service: "ms,ms,…"},
--   "waits": [call JSON, newest first],
--   "groups": {id: {"n": waiting, "q": [[member, score, ticket JSON], ...], "turn": n}},
--   "parked": n, "closed_until": ms or absent}
local LIMIT = tonumber(ARGV[1])
local SINCE = tonumber(ARGV[2])
local windows, tickets = {}, {}
local raw = redis.call('HGETALL', KEYS[3])
for i = 1, #raw, 2 do
  local w = cjson.decode(raw[i + 1])
  windows[raw[i]] = w
  if w.ticket then
    local t = redis.call('HGET', KEYS[2], w.ticket)
    if t then tickets[w.ticket] = cjson.decode(t) end
  end
end
local function hash(key)
  local out = {}
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end
local groups = {}
local P = dispatch_policy(ARGV[3], ARGV[4], ARGV[5])
for i = 6, #ARGV do
  local key = KEYS[5 + i]
  local turn = dispatch_turn(P, KEYS[10], ARGV[i])
  local head = dispatch_sequence(P, key, turn, LIMIT)
  local q = {}
  if #head > 0 then
    local ids = {}
    for j = 1, #head do ids[j] = string.match(head[j][1], '^%d+:%d+:(.+)$') end
    local docs = redis.call('HMGET', KEYS[2], unpack(ids))
    for j = 1, #ids do
      if docs[j] then q[#q + 1] = {head[j][1], head[j][2], docs[j]} end
    end
  end
  groups[ARGV[i]] = {n = redis.call('ZCARD', key), q = q, turn = turn}
end
-- The calls list is newest first: read it in pages until a call is older than SINCE.
local waits, start, page = {}, 0, 200
while true do
  local items = redis.call('LRANGE', KEYS[7], start, start + page - 1)
  local done = #items < page
  for _, item in ipairs(items) do
    local at = tonumber(string.match(item, '"at":(%d+)'))
    if at and at < SINCE then
      done = true
      break
    end
    waits[#waits + 1] = item
  end
  if done then break end
  start = start + page
end
return cjson.encode({
  seq = tonumber(redis.call('GET', KEYS[1]) or '0'),
  windows = windows, tickets = tickets, services = hash(KEYS[4]), stats = hash(KEYS[5]),
  svc_times = hash(KEYS[6]), waits = waits, groups = groups,
  parked = redis.call('ZCARD', KEYS[9]),
  closed_until = tonumber(redis.call('HGET', KEYS[8], 'closed_until') or ''),
})
