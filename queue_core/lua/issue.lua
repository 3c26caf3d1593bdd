-- issue.lua: issue a ticket at a kiosk.
-- KEYS: common (see _lib.lua), then
--   KEYS[KO+1] counter:<day>:<prefix>   KEYS[KO+2] numbers:<day>
--   then the group queues
-- ARGV: common, then
--   ARGV[AO+1] ticket id   ARGV[AO+2] service   ARGV[AO+3] group   ARGV[AO+4] prefix
--   ARGV[AO+5] priority    ARGV[AO+6] effective time (ms)
--   ARGV[AO+7] '1' when the calendar lets the kiosk issue now
--   ARGV[AO+8] the person's digest when the hall allows one active ticket per person, else ''
--   ARGV[AO+9] where to notify the visitor ('' when not asked), ARGV[AO+10] how: 'phone' or 'channel'
--   ARGV[AO+11] the service's daily cap ('' for none)
--   then the group ids
-- A person who holds an active ticket gets {"err": "already_waiting", "number": its number}.
local r = replay()
if r then return r end
local closed = hall_refusal(ARGV[AO + 7])
if closed then return closed end
local full = service_full(ARGV[AO + 2], ARGV[AO + 11])
if full then return full end
local person = ARGV[AO + 8]
if person ~= '' then
  local held = person_ticket(person)
  if held then return err('already_waiting', {number = held.number}) end
end
local t = create_ticket(KEYS[KO + 1], KEYS[KO + 2], ARGV[AO + 1], ARGV[AO + 2], ARGV[AO + 3],
  ARGV[AO + 4], ARGV[AO + 5], ARGV[AO + 6], '')
if person ~= '' then hold_person(person, t) end
if ARGV[AO + 9] ~= '' then
  notify_opt_in(t, ARGV[AO + 9], ARGV[AO + 10])
end
audit('issue', '', t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
