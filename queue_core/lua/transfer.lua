-- transfer.lua: send the window's current ticket to another service.
-- It waits again in that service's group with its effective time and printed
-- number kept: the hall's own referral does not send anyone to the back.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] window id, ARGV[AO+2] service, ARGV[AO+3] its group, then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[AO + 1])
local t = current_ticket(w)
if not t then return err('no_current_ticket') end
stat('busy:w:' .. w.id, NOW - t.called)
if CLERK ~= '' then t.clerk = CLERK end
t.status = 'waiting'
t.service = ARGV[AO + 2]
t.group = ARGV[AO + 3]
t.called = nil
t.window = nil
t.transfers = (t.transfers or 0) + 1
save_ticket(t)
queue_add(t.group, t.e, t.m)
redis.call('HINCRBY', K_BYSVC, t.service, 1)
w.ticket = nil
save_window(w)
emit('transferred', t, w.id)
audit('transfer', w.id, t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
