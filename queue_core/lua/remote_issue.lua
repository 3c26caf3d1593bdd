-- remote_issue.lua: a ticket taken on a phone, without a kiosk. Guarded by a
-- cap per service per day, a limit per client address per hour and, when
-- the hall asks for a phone number, one active remote ticket per number.
-- A refusal writes nothing; a retry with the same key gets the same ticket.
-- KEYS: common (see _lib.lua), then
--   KEYS[9]  counter:<day>:<prefix>
--   KEYS[10] numbers:<day>
--   KEYS[11] remote-count:<day>:<service>     remote tickets of the service today
--   KEYS[12] remote-client:<hour>:<client>    remote tickets of the client this hour
--   KEYS[13] remote-phones:<day>              hash phone digest -> ticket id
--   then the group queues
-- ARGV: common, then
--   ARGV[5] ticket id   ARGV[6] service   ARGV[7] group   ARGV[8] prefix
--   ARGV[9] priority    ARGV[10] effective time (ms)
--   ARGV[11] daily cap  ARGV[12] per-client limit  ARGV[13] phone digest ('' for none)
--   then the group ids
local r = replay()
if r then return r end
if tonumber(redis.call('GET', KEYS[11]) or '0') >= tonumber(ARGV[11]) then
  return err('remote_quota_exhausted')
end
if tonumber(redis.call('GET', KEYS[12]) or '0') >= tonumber(ARGV[12]) then
  return err('rate_limited')
end
local phone = ARGV[13]
if phone ~= '' then
  local held = redis.call('HGET', KEYS[13], phone)
  if held then
    local h = load_ticket(held)
    if h and (h.status == 'waiting' or h.status == 'called') then
      return err('phone_has_ticket')
    end
  end
end
local t = create_ticket(KEYS[9], KEYS[10], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], '')
t.remote = true
save_ticket(t)
redis.call('INCR', KEYS[11])
redis.call('EXPIRE', KEYS[11], 172800)
redis.call('INCR', KEYS[12])
redis.call('EXPIRE', KEYS[12], 7200)
if phone ~= '' then
  redis.call('HSET', KEYS[13], phone, t.id)
  redis.call('EXPIRE', KEYS[13], 172800)
end
remember('T:' .. t.id)
return ticket_reply(t, false)
