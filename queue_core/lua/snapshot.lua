-- snapshot.lua: the hall at one event number, read atomically (writes nothing).
-- KEYS[1] seq   KEYS[2] tickets   KEYS[3] windows   KEYS[4] by_service   KEYS[5] recent
--   KEYS[6] day   KEYS[7] parked   KEYS[8] issued:<today>
--   KEYS[9 ..] queue:<group>, one per group, same order as the group ids
-- ARGV[1 ..] group ids
-- Returns JSON {"seq", "windows": {id: window}, "tickets": {id: ticket},
--   "groups": {id: waiting}, "services": {id: waiting}, "recent": [call JSON],
--   "closed_until": ms or absent, "parked": n, "issued": {service: issued today}}
local windows, tickets, groups, services = {}, {}, {}, {}
local raw = redis.call('HGETALL', KEYS[3])
for i = 1, #raw, 2 do
  local w = cjson.decode(raw[i + 1])
  windows[raw[i]] = w
  if w.ticket then
    local t = redis.call('HGET', KEYS[2], w.ticket)
    if t then tickets[w.ticket] = cjson.decode(t) end
  end
end
for i, gid in ipairs(ARGV) do
  groups[gid] = redis.call('ZCARD', KEYS[8 + i])
end
raw = redis.call('HGETALL', KEYS[4])
for i = 1, #raw, 2 do services[raw[i]] = tonumber(raw[i + 1]) end
local issued = {}
raw = redis.call('HGETALL', KEYS[8])
for i = 1, #raw, 2 do issued[raw[i]] = tonumber(raw[i + 1]) end
return cjson.encode({
  seq = tonumber(redis.call('GET', KEYS[1]) or '0'),
  windows = windows, tickets = tickets, groups = groups, services = services,
  recent = redis.call('LRANGE', KEYS[5], 0, 19),
  closed_until = tonumber(redis.call('HGET', KEYS[6], 'closed_until') or ''),
  parked = redis.call('ZCARD', KEYS[7]), issued = issued,
})
