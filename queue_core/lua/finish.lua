-- finish.lua: end the window's current ticket as completed or no_show.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[7] window id, ARGV[8] 'completed' | 'no_show', then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[7])
local t = current_ticket(w)
if not t then return err('no_current_ticket') end
finish(w, t, ARGV[8])
save_window(w)
remember('T:' .. t.id)
return ticket_reply(t, false)
