-- snooze.lua: a waiting visitor lets others pass for a while ("我需要晚一点"),
-- once: the ticket's place moves `minutes` later (its effective time, so
-- the credit it had still counts), with a `snoozed` event. Those it lets
-- pass may now be near enough to be told (notify_near); the ticket itself
-- is not told again of a threshold it was already told of.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then
--   ARGV[AO+1] ticket id   ARGV[AO+2] minutes (checked against the hall's bound by the caller)
--   then the group ids
local r = replay()
if r then return r end
local t = load_ticket(ARGV[AO + 1])
if not t then return err('ticket_not_found') end
if t.status ~= 'waiting' or stale_member(t.m) then return err('ticket_not_waiting') end
if t.snoozed then return err('already_snoozed') end
local minutes = tonumber(ARGV[AO + 2])
t.e = t.e + minutes * 60000
t.snoozed = NOW + minutes * 60000
save_ticket(t)
queue_add(t.group, t.e, t.m)
emit('snoozed', t, '', {minutes = tostring(minutes)})
notify_near(t.group)
remember('T:' .. t.id)
return ticket_reply(t, false)
