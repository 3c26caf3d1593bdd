-- rate.lua: a visitor's rating (好差评) of a completed ticket, once. No
-- event: screens never show ratings.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then
--   ARGV[5] ticket id   ARGV[6] score   ARGV[7] reason ('' for none)
--   then the group ids
local t = load_ticket(ARGV[5])
if not t then return err('ticket_not_found') end
if t.rating then return err('already_rated') end
if t.status ~= 'completed' then return err('not_completed') end
t.rating = ARGV[6]
t.rated = NOW
if ARGV[7] ~= '' then t.reason = ARGV[7] end
save_ticket(t)
return ticket_reply(t, false)
