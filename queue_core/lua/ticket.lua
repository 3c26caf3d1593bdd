-- ticket.lua: one ticket with its live place in line (writes nothing).
-- KEYS[1] tickets   KEYS[2] open   KEYS[3] dispatch
-- KEYS[4 ..] queue:<group>, same order as the group ids
-- ARGV[1] ticket id   ARGV[2] the hall's rule   ARGV[3], ARGV[4] its ratio (normal, priority)
-- ARGV[5 ..] group ids
-- Returns JSON {"t": ticket, "pos": n, "open": [...]} or {"err": "ticket_not_found"}.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return cjson.encode({err = 'ticket_not_found'}) end
local t = cjson.decode(raw)
local reply = {t = t}
if t.status == 'waiting' then
  local P = dispatch_policy(ARGV[2], ARGV[3], ARGV[4])
  for i = 5, #ARGV do
    if ARGV[i] == t.group then
      reply.pos = dispatch_position(P, KEYS[i - 1], t.m, t.e, dispatch_turn(P, KEYS[3], t.group))
    end
  end
  reply.open = redis.call('SMEMBERS', KEYS[2])
end
return cjson.encode(reply)
