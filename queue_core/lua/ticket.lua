-- ticket.lua: one ticket with its live place in line (writes nothing).
-- KEYS[1] tickets   KEYS[2] open   KEYS[3 ..] queue:<group>, same order as the group ids
-- ARGV[1] ticket id   ARGV[2 ..] group ids
-- Returns JSON {"t": ticket, "pos": n, "open": [...]} or {"err": "ticket_not_found"}.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return cjson.encode({err = 'ticket_not_found'}) end
local t = cjson.decode(raw)
local reply = {t = t}
if t.status == 'waiting' then
  for i = 2, #ARGV do
    if ARGV[i] == t.group then reply.pos = redis.call('ZRANK', KEYS[i + 1], t.m) end
  end
  reply.open = redis.call('SMEMBERS', KEYS[2])
end
return cjson.encode(reply)
