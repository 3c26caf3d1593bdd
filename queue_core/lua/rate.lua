-- rate.lua: a visitor's rating (好差评) of a completed ticket, once. No
-- event: screens never show ratings.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then
--   ARGV[AO + 1] ticket id   ARGV[AO + 2] score   ARGV[AO + 3] reason ('' for none)
--   then the group ids
local t = load_ticket(ARGV[AO + 1])
if not t then return err('ticket_not_found') end
if t.rating then return err('already_rated') end
if t.status ~= 'completed' then return err('not_completed') end
t.rating = ARGV[AO + 2]
t.rated = NOW
if ARGV[AO + 3] ~= '' then t.reason = ARGV[AO + 3] end
save_ticket(t)
stat('rating:' .. t.rating, 1)
return ticket_reply(t, false)
