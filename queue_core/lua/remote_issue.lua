-- remote_issue.lua: a ticket taken on a phone, without a kiosk. Guarded by a
-- cap per service per day, a limit per client address per hour and, when
-- the hall asks for a phone number, one active remote ticket per number.
-- A refusal writes nothing; a retry with the same key gets the same ticket.
-- KEYS: common (see _lib.lua), then
--   KEYS[13]  counter:<day>:<prefix>
--   KEYS[14] numbers:<day>
--   KEYS[15] remote-count:<day>:<service>     remote tickets of the service today
--   KEYS[16] remote-client:<hour>:<client>    remote tickets of the client this hour
--   KEYS[17] remote-phones:<day>              hash phone digest -> ticket id
--   then the group queues
-- ARGV: common, then
--   ARGV[7] ticket id   ARGV[8] service   ARGV[9] group   ARGV[10] prefix
--   ARGV[11] priority    ARGV[12] effective time (ms)
--   ARGV[13] daily cap  ARGV[14] per-client limit  ARGV[15] phone digest ('' for none)
--   then the group ids
local r = replay()
if r then return r end
if tonumber(redis.call('GET', KEYS[15]) or '0') >= tonumber(ARGV[13]) then
  return err('remote_quota_exhausted')
end
if tonumber(redis.call('GET', KEYS[16]) or '0') >= tonumber(ARGV[14]) then
  return err('rate_limited')
end
local phone = ARGV[15]
if phone ~= '' then
  local held = redis.call('HGET', KEYS[17], phone)
  if held then
    local h = load_ticket(held)
    if h and (h.status == 'waiting' or h.status == 'called') then
      return err('phone_has_ticket')
    end
  end
end
local t = create_ticket(KEYS[13], KEYS[14], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], '')
t.remote = true
save_ticket(t)
redis.call('INCR', KEYS[15])
redis.call('EXPIRE', KEYS[15], 172800)
redis.call('INCR', KEYS[16])
redis.call('EXPIRE', KEYS[16], 7200)
if phone ~= '' then
  redis.call('HSET', KEYS[17], phone, t.id)
  redis.call('EXPIRE', KEYS[17], 172800)
end
remember('T:' .. t.id)
return ticket_reply(t, false)
