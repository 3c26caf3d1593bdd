-- transfer.lua: send the window's current ticket to another service.
-- It waits again in that service's group with its effective time and printed
-- number kept: the hall's own referral does not send anyone to the back.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[5] window id, ARGV[6] service, ARGV[7] its group, then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[5])
local t = current_ticket(w)
if not t then return err('no_current_ticket') end
t.status = 'waiting'
t.service = ARGV[6]
t.group = ARGV[7]
t.called = nil
t.window = nil
t.transfers = (t.transfers or 0) + 1
save_ticket(t)
redis.call('ZADD', QUEUE[t.group], t.e, t.m)
redis.call('HINCRBY', K_BYSVC, t.service, 1)
w.ticket = nil
save_window(w)
emit('transferred', t, w.id)
remember('T:' .. t.id)
return ticket_reply(t, false)
