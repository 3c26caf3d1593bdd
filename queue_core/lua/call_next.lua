-- call_next.lua: a window calls the next person, completing its current ticket first.
-- Takes what the window's groups give next (each group's head under the
-- hall's rule), the earliest of them or, for a window whose order is
-- 'groups', its first group's: the rule of dispatcher/dispatch.py, checked
-- against this script by the scenarios of tests/dispatch_scenarios.py. A
-- head from a day that has ended is expired on the way, never called.
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then
--   ARGV[AO+1] window id   ARGV[AO+2] the window's group ids, comma-separated, in its order
--   ARGV[AO+3] the window's order: 'place' (the smallest place over its groups'
--   heads) or 'groups' (the head of its first group with anyone waiting)
--   then the group ids
local r = replay()
if r then return r end
local w = load_window(ARGV[AO + 1])
if w.status ~= 'open' then return err('window_not_open') end
local cur = current_ticket(w)
if cur then finish(w, cur, 'completed') end
local by_groups = ARGV[AO + 3] == 'groups'
local best, best_gid
for gid in string.gmatch(ARGV[AO + 2], '[^,]+') do
  local head = group_head(gid)
  if head then
    head = {head[1], tonumber(head[2])}
    if not best or dispatch_before(DISPATCH, head, best) then best, best_gid = head, gid end
    if by_groups then break end
  end
end
local best_member = best and best[1]
if not best_member then
  w.ticket = nil
  save_window(w)
  if cur then audit('call_next', w.id, '') end
  remember('N:')
  return cjson.encode({none = true, replayed = false, out = OUT})
end
local t = load_ticket(member_id(best_member))
group_called(best_gid, best[2])
local ahead = earlier_waiting(ARGV[AO + 2], t)
call_ticket(t, w, call_reason(t, ahead), ahead)
notify_near(best_gid)
audit('call_next', w.id, t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
