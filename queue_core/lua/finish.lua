-- finish.lua: end the window's current ticket as completed or no_show.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] window id, ARGV[AO+2] 'completed' | 'no_show', then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[AO + 1])
local t = current_ticket(w)
if not t then return err('no_current_ticket') end
finish(w, t, ARGV[AO + 2])
save_window(w)
audit(ARGV[AO + 2] == 'completed' and 'complete' or 'no_show', w.id, t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
