-- window_view.lua: one window as its clerk sees it, read atomically (writes
-- nothing): its state, its current ticket, and the tickets waiting in its
-- groups in the order call-next would take them.
-- KEYS[1] windows   KEYS[2] tickets   KEYS[3] dispatch
-- KEYS[4 ..] queue:<group>, the window's groups in its order
-- ARGV[1] window id   ARGV[2] how many waiting tickets to list
-- ARGV[3] the window's order: 'place' or 'groups'
-- ARGV[4] the hall's rule   ARGV[5], ARGV[6] its ratio (normal, priority)
-- ARGV[7 ..] the window's group ids, as KEYS[4 ..]
-- Returns JSON {"w": window, "wt": ticket-or-absent, "waiting": [ticket...], "total": n}.
local limit = tonumber(ARGV[2])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local w = raw and cjson.decode(raw) or {id = ARGV[1], status = 'closed'}
local reply = {w = w, waiting = {}, total = 0}
if w.ticket then
  local t = redis.call('HGET', KEYS[2], w.ticket)
  if t then reply.wt = cjson.decode(t) end
end
-- Each group's first `limit` in its call order, merged as call-next picks
-- among its groups' heads: the first `limit` the window will call.
local P = dispatch_policy(ARGV[4], ARGV[5], ARGV[6])
local seqs = {}
for i = 4, #KEYS do
  reply.total = reply.total + redis.call('ZCARD', KEYS[i])
  seqs[#seqs + 1] = dispatch_sequence(P, KEYS[i], dispatch_turn(P, KEYS[3], ARGV[i + 3]), limit)
end
for _, head in ipairs(dispatch_merge(P, seqs, ARGV[3] == 'groups', limit)) do
  local t = redis.call('HGET', KEYS[2], string.match(head[1], '^%d+:%d+:(.+)$'))
  if t then reply.waiting[#reply.waiting + 1] = cjson.decode(t) end
end
return cjson.encode(reply)
