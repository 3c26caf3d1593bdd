-- park.lua: the window's called ticket steps aside (the visitor went to fetch
-- a paper): it becomes `parked` and the window is free. Any window serving
-- its group resumes it later (resume.lua); the day's end expires it.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] window id, then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[AO + 1])
local t = current_ticket(w)
if not t then return err('no_current_ticket') end
stat('busy:w:' .. w.id, NOW - t.called)
if CLERK ~= '' then t.clerk = CLERK end
t.status = 'parked'
t.parked = NOW
t.parked_at = w.id
save_ticket(t)
redis.call('ZADD', K_PARKED, NOW, t.id)
w.ticket = nil
save_window(w)
stat('parked', 1)
emit('parked', t, w.id)
audit('park', w.id, t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
