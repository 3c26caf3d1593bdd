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
  if status == 'closed' then
    local t = current_ticket(w)
    if t then finish(w, t, 'completed') end
  end
  -- Open time counts toward the day its span ends in (idle = open - busy).
  if w.status == 'open' and w.since then stat('open:w:' .. w.id, NOW - w.since) end
  w.status = status
  w.since = NOW
  save_window(w)
  if status == 'open' then
    redis.call('SADD', K_OPEN, w.id)
  else
    redis.call('SREM', K_OPEN, w.id)
  end
  emit('window', nil, w.id, {status = status})
  local actions = {open = 'open_window', paused = 'pause_window', closed = 'close_window'}
  audit(actions[status], w.id, '')
end
remember('W:' .. w.id)
return window_reply(w, false)
