-- window_view.lua: one window as its clerk sees it, read atomically (writes
-- nothing): its state, its current ticket, and the tickets waiting in its
-- groups in the order call-next would take them.
-- KEYS[1] windows   KEYS[2] tickets   KEYS[3 ..] queue:<group>, the window's groups
-- ARGV[1] window id   ARGV[2] how many waiting tickets to list
-- ARGV[3] the window's order: 'place' or 'groups' (KEYS[3 ..] are then in its order)
-- Returns JSON {"w": window, "wt": ticket-or-absent, "waiting": [ticket...], "total": n}.
local limit = tonumber(ARGV[2])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local w = raw and cjson.decode(raw) or {id = ARGV[1], status = 'closed'}
local reply = {w = w, waiting = {}, total = 0}
if w.ticket then
  local t = redis.call('HGET', KEYS[2], w.ticket)
  if t then reply.wt = cjson.decode(t) end
end
-- The dispatch rule (dispatcher/dispatch.py, checked against this script by
-- tests/dispatch_scenarios.py): call-next takes the smallest (score, member)
-- over the groups' heads, so the first `limit` of each group, merged the same
-- way, are the first `limit` it will call.
local heads = {}
for i = 3, #KEYS do
  reply.total = reply.total + redis.call('ZCARD', KEYS[i])
  local items = redis.call('ZRANGE', KEYS[i], 0, limit - 1, 'WITHSCORES')
  for j = 1, #items, 2 do
    heads[#heads + 1] = {m = items[j], s = tonumber(items[j + 1]), g = i}
  end
end
-- A window taking its groups in turn lists its first group's queue, then the next's.
local by_groups = ARGV[3] == 'groups'
table.sort(heads, function(a, b)
  if by_groups and a.g ~= b.g then return a.g < b.g end
  if a.s ~= b.s then return a.s < b.s end
  return a.m < b.m
end)
for k = 1, math.min(limit, #heads) do
  local id = string.match(heads[k].m, '^%d+:%d+:(.+)$')
  local t = redis.call('HGET', KEYS[2], id)
  if t then reply.waiting[#reply.waiting + 1] = cjson.decode(t) end
end
return cjson.encode(reply)
