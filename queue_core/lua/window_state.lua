-- window_state.lua: open, pause or close a window.
-- Closing completes a ticket still at the window; pausing keeps it (the
-- person is served, nobody new is called). Setting the state a window
-- already has changes nothing and appends no event (nor an audit entry).
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then ARGV[AO+1] window id, ARGV[AO+2] 'open' | 'paused' | 'closed', then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[AO + 1])
local status = ARGV[AO + 2]
if w.status ~= status then
  set_window_status(w, status)
  local actions = {open = 'open_window', paused = 'pause_window', closed = 'close_window'}
  audit(actions[status], w.id, '')
end
remember('W:' .. w.id)
return window_reply(w, false)
