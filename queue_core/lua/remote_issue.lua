-- remote_issue.lua: a ticket taken on a phone, without a kiosk. Guarded by a
-- cap per service per day, a limit per client address per hour and, when
-- the hall asks for a phone number, one active remote ticket per number.
-- A refusal writes nothing; a retry with the same key gets the same ticket.
-- KEYS: common (see _lib.lua), then
--   KEYS[KO + 1]  counter:<day>:<prefix>
--   KEYS[KO + 2] numbers:<day>
--   KEYS[KO + 3] remote-count:<day>:<service>     remote tickets of the service today
--   KEYS[KO + 4] remote-client:<hour>:<client>    remote tickets of the client this hour
--   KEYS[KO + 5] remote-phones:<day>              hash phone digest -> ticket id
--   then the group queues
-- ARGV: common, then
--   ARGV[AO + 1] ticket id   ARGV[AO + 2] service   ARGV[AO + 3] group   ARGV[AO + 4] prefix
--   ARGV[AO + 5] priority    ARGV[AO + 6] effective time (ms)
--   ARGV[AO + 7] daily cap  ARGV[AO + 8] per-client limit  ARGV[AO + 9] phone digest ('' for none)
--   ARGV[AO + 10] '1' when the calendar lets the kiosk issue now
--   ARGV[AO + 11] where to notify the visitor ('' when not asked), ARGV[AO + 12] how: 'phone' or 'channel'
--   ARGV[AO + 13] the service's daily cap over every way in ('' for none)
--   then the group ids
local r = replay()
if r then return r end
local closed = hall_refusal(ARGV[AO + 10])
if closed then return closed end
local full = service_full(ARGV[AO + 2], ARGV[AO + 13])
if full then return full end
if tonumber(redis.call('GET', KEYS[KO + 3]) or '0') >= tonumber(ARGV[AO + 7]) then
  return err('remote_quota_exhausted')
end
if tonumber(redis.call('GET', KEYS[KO + 4]) or '0') >= tonumber(ARGV[AO + 8]) then
  return err('rate_limited')
end
local phone = ARGV[AO + 9]
if phone ~= '' then
  local held = redis.call('HGET', KEYS[KO + 5], phone)
  if held then
    local h = load_ticket(held)
    if h and (h.status == 'waiting' or h.status == 'called' or h.status == 'parked') then
      return err('phone_has_ticket')
    end
  end
end
local t = create_ticket(KEYS[KO + 1], KEYS[KO + 2], ARGV[AO + 1], ARGV[AO + 2], ARGV[AO + 3], ARGV[AO + 4], ARGV[AO + 5], ARGV[AO + 6], '')
t.remote = true
save_ticket(t)
if ARGV[AO + 11] ~= '' then
  notify_opt_in(t, ARGV[AO + 11], ARGV[AO + 12])
end
redis.call('INCR', KEYS[KO + 3])
redis.call('EXPIRE', KEYS[KO + 3], 172800)
redis.call('INCR', KEYS[KO + 4])
redis.call('EXPIRE', KEYS[KO + 4], 7200)
if phone ~= '' then
  redis.call('HSET', KEYS[KO + 5], phone, t.id)
  redis.call('EXPIRE', KEYS[KO + 5], 172800)
end
remember('T:' .. t.id)
return ticket_reply(t, false)
