-- rejoin.lua: a visitor who missed the call comes back. A no_show ticket,
-- within the hall's late-return time of its no-show and once only, waits
-- again with its number, placed as if issued now (its class credit applies).
-- KEYS: common (see _lib.lua), then the group queues
-- ARGV: common, then
--   ARGV[AO+1] ticket id   ARGV[AO+2] late-return time (ms; 0: never)
--   ARGV[AO+3] effective time (ms) of a ticket of its class issued now
--   ARGV[AO+4] '1' when the calendar has the hall in a span now, else '0'
--   then the group ids
local r = replay()
if r then return r end
local t = load_ticket(ARGV[AO + 1])
if not t then return err('ticket_not_found') end
local late = tonumber(ARGV[AO + 2])
if t.status ~= 'no_show' or t.rejoined or late <= 0 or NOW - t.done > late
    or t.done < STALE then
  return err('late_return_closed', {late = late})
end
local closed = hall_refusal(ARGV[AO + 4])
if closed then return closed end
-- Issued for a person (one active ticket each) who took another since.
local person = redis.call('HGET', K_PERSONS, 't:' .. t.id)
if person then
  local held = person_ticket(person)
  if held then return err('already_waiting', {number = held.number}) end
end
local next_seq = tonumber(redis.call('GET', K_SEQ) or '0') + 1
t.status = 'waiting'
t.e = tonumber(ARGV[AO + 3])
t.m = string.format('%015d:%012d:%s', NOW, next_seq, t.id)
t.called = nil
t.window = nil
t.done = nil
t.recalls = nil
t.rejoined = NOW
save_ticket(t)
queue_add(t.group, t.e, t.m)
redis.call('HINCRBY', K_BYSVC, t.service, 1)
if person then hold_person(person, t) end
stat('rejoined', 1)
emit('rejoined', t, '')
audit('rejoin', '', t.number)
remember('T:' .. t.id)
return ticket_reply(t, false)
