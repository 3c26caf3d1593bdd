-- cancel.lua: the visitor gives up a waiting ticket.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] ticket id, then the group ids
local r = replay()
if r then return r end
local t = load_ticket(ARGV[AO + 1])
if not t then return err('ticket_not_found') end
if t.status ~= 'waiting' then return err('ticket_not_waiting') end
queue_rem(t.group, t.m)
redis.call('HINCRBY', K_BYSVC, t.service, -1)
redis.call('HDEL', K_EST, t.id)
t.status = 'cancelled'
t.done = NOW
save_ticket(t)
release_person(t, false)
notify_forget(t)
notify_near(t.group)
emit('cancelled', t, '')
audit('cancel', '', t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
