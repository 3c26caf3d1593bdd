-- recall.lua: announce the window's current ticket again.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[7] window id, then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[7])
local t = current_ticket(w)
if not t then return err('no_current_ticket') end
t.recalls = (t.recalls or 0) + 1
save_ticket(t)
redis.call('LPUSH', K_RECENT, cjson.encode({number = t.number, window = w.id, at = NOW}))
redis.call('LTRIM', K_RECENT, 0, RECENT_KEEP - 1)
emit('recalled', t, w.id)
remember('T:' .. t.id)
return ticket_reply(t, false)
