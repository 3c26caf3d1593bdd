-- recall.lua: announce the window's current ticket again, at most the hall's
-- recall limit times after its first call.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] window id, ARGV[AO+2] recall limit, then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[AO + 1])
local t = current_ticket(w)
if not t then return err('no_current_ticket') end
local limit = tonumber(ARGV[AO + 2])
if (t.recalls or 0) >= limit then return err('recall_limit', {limit = limit}) end
t.recalls = (t.recalls or 0) + 1
save_ticket(t)
push_recent(t, w)
emit('recalled', t, w.id)
audit('recall', w.id, t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
