-- _lib.lua: prepended to every script that changes state (not a script itself).
--
-- Common KEYS, in this order, then the script's own KEYS (from KEYS[KO + 1]), then one queue per group:
--   KEYS[1] seq          INCR counter, the hall's event number
--   KEYS[2] events       stream, entry id <seq>-0, capped
--   KEYS[3] idem         idempotency reference of this request (untouched when ARGV[2] = 0)
--   KEYS[4] tickets      hash id -> ticket JSON
--   KEYS[5] windows      hash id -> window JSON
--   KEYS[6] open         set of open window ids
--   KEYS[7] by_service   hash service -> waiting count
--   KEYS[8] recent       list of recent calls, newest first
--   KEYS[9] stats        hash stats:<local day>, today's figures (fields below)
--   KEYS[10] svc_times   hash service -> its last visits' durations (ms), 10 digits each, comma-separated, oldest first
--   KEYS[11] estimates   hash ticket id -> JSON {c, lo, hi}: the wait (ms) told at issue
--   KEYS[12] waits       list of calls with their wait and that estimate, newest first
--   KEYS[13] day         hash: done, expired_through, closed_until, status (keys.py)
--   KEYS[14] audit       stream of audit entries, id <ms>-<n>, trimmed by age
--   KEYS[15] parked      sorted set of parked ticket ids, scored by when parked
--   KEYS[16] dispatch    hash group -> its turn under the rule 'ratio' (_dispatch.lua)
--   KEYS[17] persons     hash d:<person digest> -> ticket id, t:<ticket id> -> digest (keys.py)
--   KEYS[18] arrivals    sorted set of <group>|<queue member>, all scored 0: arrival order (keys.py)
--   KEYS[19] notify      hash ticket id -> JSON {to, via, lo, called}: who asked to be told (keys.py)
--   KEYS[20] outbox      stream of deliveries for the hall's gateway (keys.py)
--   KEYS[21] issued      hash issued:<local day>, service -> tickets issued that day (daily caps)
--   KEYS[#KEYS-NG+1 ..]  queue:<group>, one per group of the hall, same order as the group ids
-- Common ARGV, then the script's own ARGV (from ARGV[AO + 1]), then the group ids:
--   ARGV[1] now in epoch ms
--   ARGV[2] idempotency TTL in seconds (0 = no idempotency key)
--   ARGV[3] stream cap (approximate MAXLEN)
--   ARGV[4] NG, the number of groups
--   ARGV[5] the acting credential's label: its name, or role and keyed short id ('' for none)
--   ARGV[6] the local hour of NOW, 'HH'
--   ARGV[7] the acting credential's role when its changes are audited (clerk, manager,
--           admin), else ''
--   ARGV[8] the client's address, for the audit entry
--   ARGV[9] stale: the latest day end at or before NOW (epoch ms); a ticket that joined
--           the queue or was parked before it belongs to an ended day and is expired,
--           never called
--   ARGV[10] how long audit entries stay in Redis (ms)
--   ARGV[11] the hall's dispatch rule ('credit', 'fifo', 'ratio')
--   ARGV[12], ARGV[13] under 'ratio': normal, then priority tickets per turn
--   ARGV[14] `[notify] ahead`, comma-separated, largest first ('' when the hall has no gateway)
--   ARGV[#ARGV-NG+1 ..] group ids
--
-- Every script returns one JSON string:
--   {"t": ticket, "pos": n, "open": [...], "replayed": bool, "out": [...]} a ticket
--   {"w": window, "wt": ticket-or-absent, ...}                            a window
--   {"a": appointment, ...}                                               an appointment
--   {"none": true, ...}                                                   nothing to call
--   {"day": day hash, ...}                                                the hall's day
--   {"err": code, ...}                                                    refused; nothing written
-- "out" lists what happened, for the caller's metrics.
--
-- stats:<day> fields (counts, or milliseconds for times); HH is the local hour:
--   issued:HH  called:HH  served:HH  wait:HH (sum of first-call waits)
--   served:w:<window>  busy:w:<window> (call to finish)  open:w:<window> (ended open spans)
--   rating:<score>  est:n  est:abs (sum of |actual - estimate|)  est:in (inside the range)
--   expired  parked  rejoined

local NOW = tonumber(ARGV[1])
local NOW_S = ARGV[1]  -- NOW as text: formatting a float is the costliest thing Lua does here
local IDEM_TTL = tonumber(ARGV[2])
local MAXLEN = ARGV[3]
local NG = tonumber(ARGV[4])
local K_SEQ, K_EVENTS, K_IDEM = KEYS[1], KEYS[2], KEYS[3]
local K_TICKETS, K_WINDOWS, K_OPEN = KEYS[4], KEYS[5], KEYS[6]
local K_BYSVC, K_RECENT = KEYS[7], KEYS[8]
local K_STATS, K_SVCTIMES, K_EST, K_WAITS = KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local K_DAY, K_AUDIT, K_PARKED = KEYS[13], KEYS[14], KEYS[15]
local K_DISPATCH, K_PERSONS, K_ARRIVALS = KEYS[16], KEYS[17], KEYS[18]
local K_NOTIFY, K_OUTBOX, K_ISSUED = KEYS[19], KEYS[20], KEYS[21]
local CLERK, HOUR = ARGV[5], ARGV[6]
local ROLE, CLIENT = ARGV[7], ARGV[8]
local STALE = tonumber(ARGV[9])
local AUDIT_KEEP = tonumber(ARGV[10])
local DISPATCH = dispatch_policy(ARGV[11], ARGV[12], ARGV[13])
local KO, AO = 21, 14  -- the script's own KEYS start at KEYS[KO + 1], its ARGV at ARGV[AO + 1]
local AHEAD = {}  -- `[notify] ahead`, largest first; empty: no gateway
for n in string.gmatch(ARGV[14], '[^,]+') do AHEAD[#AHEAD + 1] = tonumber(n) end
local RECENT_KEEP = 20
local WAITS_KEEP = 5000       -- a big hall's busiest two hours of calls
local SVC_TIMES_KEEP = 40     -- the learned model forgets beyond ~20 visits anyway
local STATS_TTL = 259200      -- three days: today's figures, and yesterday's till the report

local GROUP_IDS = {}
local QUEUE = {}
for i = 1, NG do
  local gid = ARGV[#ARGV - NG + i]
  GROUP_IDS[i] = gid
  QUEUE[gid] = KEYS[#KEYS - NG + i]
end

local OUT = {}
local stats_touched = false
-- Fields a call adds to the audit entry of the script that made it (its reason).
local AUDIT_EXTRA = {}

local function stat(field, by)
  redis.call('HINCRBY', K_STATS, field, string.format('%d', by))
  if not stats_touched then
    redis.call('EXPIRE', K_STATS, STATS_TTL)
    stats_touched = true
  end
end

-- Append one visit's duration to its service's recent ones, for the learned
-- estimate. Kept as text of fixed-width entries ("0000412000,0000385000"),
-- not JSON: every call-next completes a visit, and decoding and encoding
-- forty numbers was a third of its time in Redis (formatting a float is the
-- costliest thing Lua does here); fixed width trims by length. An older
-- qms's JSON array is converted on its first append.
local SVC_TIME_WIDTH = 11  -- ten digits (115 days in ms) and a comma
local function learn_service_time(service, ms)
  local raw = redis.call('HGET', K_SVCTIMES, service) or ''
  if string.sub(raw, 1, 1) == '[' then
    local parts = {}
    for i, v in ipairs(cjson.decode(raw)) do parts[i] = string.format('%010d', v) end
    raw = table.concat(parts, ',')
  end
  local entry = string.format('%010d', math.min(ms, 9999999999))
  raw = raw == '' and entry or raw .. ',' .. entry
  local keep = SVC_TIMES_KEEP * SVC_TIME_WIDTH - 1
  if #raw > keep then raw = string.sub(raw, -keep) end
  redis.call('HSET', K_SVCTIMES, service, raw)
end

local function load_ticket(id)
  local raw = redis.call('HGET', K_TICKETS, id)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function save_ticket(t)
  redis.call('HSET', K_TICKETS, t.id, cjson.encode(t))
end

local function load_window(id)
  local raw = redis.call('HGET', K_WINDOWS, id)
  if not raw then return {id = id, status = 'closed'} end
  return cjson.decode(raw)
end

local function save_window(w)
  redis.call('HSET', K_WINDOWS, w.id, cjson.encode(w))
end

-- The waiting count of every group as a JSON object, built as text: group
-- ids need no escaping ([a-z0-9-]), and cjson formats each count as a float.
local function waiting_json()
  local parts = {}
  for i, gid in ipairs(GROUP_IDS) do
    parts[i] = string.format('"%s":%d', gid, redis.call('ZCARD', QUEUE[gid]))
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- Append one event to the stream and note it for the caller's metrics.
-- t may be nil (a window event); extra holds additional stream fields.
local function emit(etype, t, window, extra)
  local seq = redis.call('INCR', K_SEQ)
  local fields = {
    'type', etype, 'at', NOW_S,
    'number', t and t.number or '', 'window', window or '',
    'service', t and t.service or '',
    'waiting', waiting_json(),
  }
  if extra then
    for k, v in pairs(extra) do
      fields[#fields + 1] = k
      fields[#fields + 1] = v
    end
  end
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', MAXLEN, seq .. '-0', unpack(fields))
  local o = {type = etype}
  if t then
    o.service = t.service
    o.priority = t.priority
    o.group = t.group
    -- As text: the caller reads integers either way, and cjson would format floats.
    if etype == 'called' and not t.transfers and not t.rejoined then
      o.wait = string.format('%d', NOW - t.issued)
    end
    if etype == 'completed' and t.called then o.dur = string.format('%d', (t.done or NOW) - t.called) end
  end
  OUT[#OUT + 1] = o
end

local function is_waiting(t)
  return t and t.status == 'waiting'
end

local function ticket_reply(t, replayed)
  local reply = {t = t, replayed = replayed, out = OUT}
  if is_waiting(t) then
    reply.pos = dispatch_position(DISPATCH, QUEUE[t.group], t.m, t.e,
      dispatch_turn(DISPATCH, K_DISPATCH, t.group))
    reply.open = redis.call('SMEMBERS', K_OPEN)
  end
  return cjson.encode(reply)
end

local function window_reply(w, replayed)
  local reply = {w = w, replayed = replayed, out = OUT}
  if w.ticket then reply.wt = load_ticket(w.ticket) end
  return cjson.encode(reply)
end

local function err(code, extra)
  local reply = extra or {}
  reply.err = code
  return cjson.encode(reply)
end

-- The hall's day hash as a table (numbers as numbers).
local function day_state()
  local flat = redis.call('HGETALL', K_DAY)
  local d = {}
  for i = 1, #flat, 2 do d[flat[i]] = tonumber(flat[i + 1]) or flat[i + 1] end
  return d
end

-- Why a new ticket cannot be taken now, or nil: the calendar has the hall
-- closed (`calendar_open` is not '1'; checked here, after a replay, so a
-- retried issue still gets its ticket), a manager closed it, or NOW is
-- before a day end already passed (a replica whose clock lags).
local function hall_refusal(calendar_open)
  if calendar_open ~= '1' then return err('hall_closed') end
  local until_ms = tonumber(redis.call('HGET', K_DAY, 'closed_until') or '')
  if until_ms and until_ms > NOW then return err('hall_closed', {['until'] = until_ms}) end
  local through = tonumber(redis.call('HGET', K_DAY, 'expired_through') or '')
  if through and NOW < through then return err('hall_closed') end
  return nil
end

-- One audit entry for a change made by a clerk, manager or admin credential,
-- in the same script as the change. Ids are <ms>-<n>, rising even when a
-- replica's clock lags the last entry's, so a cursor never skips one.
local function audit(action, window, number)
  if ROLE == '' then return end
  local id = NOW .. '-0'
  local last = redis.call('XREVRANGE', K_AUDIT, '+', '-', 'COUNT', 1)[1]
  if last then
    local ms, n = string.match(last[1], '^(%d+)-(%d+)$')
    if tonumber(ms) >= NOW then id = ms .. '-' .. (tonumber(n) + 1) end
  end
  redis.call('XADD', K_AUDIT, id, 'at', NOW_S, 'actor', CLERK, 'role', ROLE,
    'action', action, 'window', window or '', 'number', number or '', 'client', CLIENT,
    unpack(AUDIT_EXTRA))
  redis.call('XTRIM', K_AUDIT, 'MINID', '~', tostring(NOW - AUDIT_KEEP))
end

-- A group's queue changes only through these two, which keep the arrival
-- index (K_ARRIVALS) beside it.
local function queue_add(gid, score, member)
  redis.call('ZADD', QUEUE[gid], score, member)
  redis.call('ZADD', K_ARRIVALS, 0, gid .. '|' .. member)
end

local function queue_rem(gid, member)
  redis.call('ZREM', QUEUE[gid], member)
  redis.call('ZREM', K_ARRIVALS, gid .. '|' .. member)
end

-- A queue member is '<joined ms, 15 digits>:<event number, 12 digits>:<ticket id>'
-- (create_ticket): its parts are read by position, not by pattern.
local function member_time(member)
  return tonumber(string.sub(member, 1, 15))
end

local function member_id(member)
  return string.sub(member, 30)
end

-- Whether a queue member (or a parked time) belongs to a day that has ended.
local function stale_member(member)
  return member_time(member) < STALE
end

-- A retried request answers with the current state of what it first returned.
local function replay()
  if IDEM_TTL <= 0 then return nil end
  local ref = redis.call('GET', K_IDEM)
  if not ref then return nil end
  local kind, id = string.sub(ref, 1, 1), string.sub(ref, 3)
  if kind == 'T' then
    local t = load_ticket(id)
    -- Archived and gone from Redis (a retry a day late): say so, do not redo it.
    if not t then return err('ticket_not_found') end
    return ticket_reply(t, true)
  end
  if kind == 'W' then return window_reply(load_window(id), true) end
  if kind == 'A' then  -- only appointment.lua stores 'A:', and it passes the appointments hash as KEYS[KO + 1]
    return cjson.encode({a = cjson.decode(redis.call('HGET', KEYS[KO + 1], id)), replayed = true, out = OUT})
  end
  if kind == 'D' then return cjson.encode({day = day_state(), replayed = true, out = OUT}) end
  return cjson.encode({none = true, replayed = true, out = OUT})
end

local function remember(ref)
  if IDEM_TTL > 0 then redis.call('SET', K_IDEM, ref, 'EX', IDEM_TTL) end
end

-- The window's current ticket, if it still holds one.
local function current_ticket(w)
  if not w.ticket then return nil end
  local t = load_ticket(w.ticket)
  if t and t.status == 'called' and t.window == w.id then return t end
  return nil
end

-- ------------------------------------------------------------ notifications
-- A ticket that asked to be told has an entry in K_NOTIFY: where to (`to`,
-- `via`), `lo` the smallest threshold of `[notify] ahead` already passed
-- (so a ticket moved back, by a transfer or a snooze, is never told twice
-- for one threshold) and `called`. The entry goes when the ticket ends; no
-- event, ticket record or archive row holds `to`. A delivery is appended to
-- the outbox by the script whose change causes it, so a crash can neither
-- lose one nor invent one; the sender (notify/sender.py) posts it.

-- The notification functions are made on their first use in a script: a
-- Lua script makes every function it defines on every call, and most calls
-- of most halls never need these.
local notifier_made
local function notifier()
  if notifier_made then return notifier_made end
  local N = {}

  local function outbox(kind, t, n, ahead, window)
    redis.call('XADD', K_OUTBOX, '*', 'ticket', t.id, 'kind', kind,
      'ahead', string.format('%d', ahead), 'number', t.number, 'service', t.service,
      'window', window or '', 'to', n.to, 'via', n.via, 'at', NOW_S)
    OUT[#OUT + 1] = {type = 'outbox', kind = kind}  -- the caller counts it, wakes its sender
  end

  -- The threshold a ticket `pos` from the front is now within and has not
  -- been told of (the smallest such), or nil.
  local function due_threshold(pos, lo)
    local due
    for _, th in ipairs(AHEAD) do
      if th >= pos and (lo == nil or th < lo) then due = th end
    end
    return due
  end

  local function entry(id)
    local raw = redis.call('HGET', K_NOTIFY, id)
    return raw and cjson.decode(raw)
  end

  -- A new ticket asks to be told; the thresholds it is already within count
  -- as passed (the kiosk or the page has just shown its place).
  function N.opt_in(t, to, via, pos)
    t.nt = 1
    save_ticket(t)
    redis.call('HSET', K_NOTIFY, t.id, cjson.encode({to = to, via = via, lo = due_threshold(pos, nil)}))
  end

  -- After a change that moves group `gid`'s line up: tell each ticket near
  -- its front that came within a threshold it was not told of.
  function N.near(gid)
    if redis.call('HLEN', K_NOTIFY) == 0 then return end
    local turn = dispatch_turn(DISPATCH, K_DISPATCH, gid)
    for i, head in ipairs(dispatch_sequence(DISPATCH, QUEUE[gid], turn, AHEAD[1] + 1)) do
      local id = member_id(head[1])
      local n = entry(id)
      local due = n and due_threshold(i - 1, n.lo)
      if due then
        n.lo = due
        redis.call('HSET', K_NOTIFY, id, cjson.encode(n))
        outbox('ahead', load_ticket(id), n, i - 1)
      end
    end
  end

  -- A ticket is called: told once (a resume or a call after a transfer is
  -- not told again), and every threshold counts as passed.
  function N.called(t, window)
    local n = entry(t.id)
    if not n or n.called then return end
    n.called = true
    n.lo = AHEAD[#AHEAD]
    redis.call('HSET', K_NOTIFY, t.id, cjson.encode(n))
    outbox('called', t, n, 0, window)
  end

  notifier_made = N
  return N
end

-- A ticket just placed in its queue asks to be told.
local function notify_opt_in(t, to, via)
  local turn = dispatch_turn(DISPATCH, K_DISPATCH, t.group)
  notifier().opt_in(t, to, via, dispatch_position(DISPATCH, QUEUE[t.group], t.m, t.e, turn))
end

local function notify_near(gid)
  if #AHEAD > 0 then notifier().near(gid) end
end

local function notify_called(t, window)
  if #AHEAD > 0 then notifier().called(t, window) end
end

-- A ticket ended: where to reach its visitor is forgotten.
local function notify_forget(t)
  if t.nt then redis.call('HDEL', K_NOTIFY, t.id) end
end

-- ------------------------------------------------------------------ persons
-- `[issuing] one_active_per_person`: a person (a keyed digest of an identity
-- number, never the number) holds at most one active ticket. The index is
-- kept as tickets end, and read with the held ticket's status checked too,
-- so an entry left behind (its ticket archived) can never lock anyone out.

local function is_active(t)
  return t ~= nil and (t.status == 'waiting' or t.status == 'called' or t.status == 'parked')
end

-- The active ticket the person holds, or nil.
local function person_ticket(digest)
  local id = redis.call('HGET', K_PERSONS, 'd:' .. digest)
  if not id then return nil end
  local t = load_ticket(id)
  if is_active(t) then return t end
  return nil
end

-- The ticket is marked (`pd`), so ending a ticket of nobody's costs no read.
local function hold_person(digest, t)
  redis.call('HSET', K_PERSONS, 'd:' .. digest, t.id, 't:' .. t.id, digest)
  if not t.pd then
    t.pd = 1
    save_ticket(t)
  end
end

-- A ticket ended: its person may take another. A no-show keeps the way
-- back from its ticket to the person (`keep_link`): should it rejoin, the
-- person must not hold a second ticket by then.
local function release_person(t, keep_link)
  if not t.pd then return end
  local digest = redis.call('HGET', K_PERSONS, 't:' .. t.id)
  if not digest then return end
  if redis.call('HGET', K_PERSONS, 'd:' .. digest) == t.id then
    redis.call('HDEL', K_PERSONS, 'd:' .. digest)
  end
  if not keep_link then redis.call('HDEL', K_PERSONS, 't:' .. t.id) end
end

-- At a day's end: drop every entry whose ticket is no longer active (no
-- ticket of an ended day can rejoin), so no digest outlives its day.
local function sweep_persons()
  local flat = redis.call('HGETALL', K_PERSONS)
  for i = 1, #flat, 2 do
    local field, value = flat[i], flat[i + 1]
    local id = string.sub(field, 1, 2) == 'd:' and value or string.sub(field, 3)
    if not is_active(load_ticket(id)) then redis.call('HDEL', K_PERSONS, field) end
  end
end

-- End the window's current ticket with a final status and free the window.
local function finish(w, t, status)
  if t.called then
    local ms = NOW - t.called
    stat('busy:w:' .. w.id, ms)
    if status == 'completed' then
      stat('served:w:' .. w.id, 1)
      stat('served:' .. HOUR, 1)
      learn_service_time(t.service, ms)
    end
  end
  if CLERK ~= '' then t.clerk = CLERK end
  t.status = status
  t.done = NOW
  save_ticket(t)
  release_person(t, status == 'no_show')
  notify_forget(t)
  w.ticket = nil
  emit(status, t, w.id)
end

-- The wait of a ticket's first call, against the estimate it was given at issue.
-- A transferred ticket's later calls are not waits of their own.
local function record_wait(t)
  local raw = redis.call('HGET', K_EST, t.id)
  if raw then redis.call('HDEL', K_EST, t.id) end
  if t.transfers or t.rejoined then return end
  local wait = NOW - t.issued
  stat('called:' .. HOUR, 1)
  stat('wait:' .. HOUR, wait)
  -- JSON built as text (ids need no escaping; cjson would format each
  -- number as a float): {at, w, g, s} and, with the estimate told, c, lo, hi.
  local entry = string.format('{"at":%s,"w":%d,"g":"%s","s":"%s"', NOW_S, wait, t.group, t.service)
  if raw then
    local e = cjson.decode(raw)
    entry = entry .. string.format(',"c":%d,"lo":%d,"hi":%d', e.c, e.lo, e.hi)
    stat('est:n', 1)
    stat('est:abs', math.floor(math.abs(wait - e.c) + 0.5))
    if wait >= e.lo and wait <= e.hi then stat('est:in', 1) end
  end
  redis.call('LPUSH', K_WAITS, entry .. '}')
  redis.call('LTRIM', K_WAITS, 0, WAITS_KEEP - 1)
end

-- The screens' list of recent calls, newest first.
local function push_recent(t, w)
  redis.call('LPUSH', K_RECENT,
    string.format('{"number":"%s","window":"%s","at":%s}', t.number, w.id, NOW_S))
  redis.call('LTRIM', K_RECENT, 0, RECENT_KEEP - 1)
end

-- Put a ticket at a window as called and announce it (a `called` event).
local function seat(t, w, extra)
  if CLERK ~= '' then t.clerk = CLERK end
  t.status = 'called'
  t.called = NOW
  t.window = w.id
  save_ticket(t)
  w.ticket = t.id
  save_window(w)
  push_recent(t, w)
  emit('called', t, w.id, extra)
  notify_called(t, w.id)
end

-- Waiting tickets of a window's groups (comma-separated) that joined their
-- queue before `t` (a smaller member: earlier, or the same millisecond and
-- an earlier event number), leaving out those of an ended day: those a call
-- of `t` goes ahead of. Counted in the arrival index, O(log n) a group.
-- The index is first rebuilt from the queues when its size is not theirs:
-- it was new to a hall with people waiting, or scripts of an older qms
-- (during a rolling upgrade) changed a queue without it.
local function earlier_waiting(groups_csv, t)
  local total = 0
  for _, gid in ipairs(GROUP_IDS) do total = total + redis.call('ZCARD', QUEUE[gid]) end
  if redis.call('ZCARD', K_ARRIVALS) ~= total then
    redis.call('DEL', K_ARRIVALS)
    for _, gid in ipairs(GROUP_IDS) do
      for _, m in ipairs(redis.call('ZRANGE', QUEUE[gid], 0, -1)) do
        redis.call('ZADD', K_ARRIVALS, 0, gid .. '|' .. m)
      end
    end
  end
  local n, from = 0, string.format('%015d', math.max(STALE, 0))
  for gid in string.gmatch(groups_csv, '[^,]+') do
    n = n + redis.call('ZLEXCOUNT', K_ARRIVALS, '[' .. gid .. '|' .. from, '(' .. gid .. '|' .. t.m)
  end
  return n
end

-- Why call-next took `t`, ahead of `ahead` earlier tickets
-- (dispatcher/dispatch.py, `call_reason`).
local function call_reason(t, ahead)
  if ahead == 0 then return 'place' end
  if DISPATCH.rule == 'ratio' then return 'ratio' end
  if tonumber(t.e) < tonumber(t.issued) then
    return t.priority == 'appointment' and 'appointment' or 'credit'
  end
  return 'order'
end

-- Seat `t` at `w` with the reason it is called: kept on the ticket (`why`,
-- archived with it), on its `called` event and in the caller's audit entry
-- (`AUDIT_EXTRA`).
local function seat_for(t, w, code, ahead, extra)
  AUDIT_EXTRA = {'reason', code, 'ahead', string.format('%d', ahead)}
  t.why = {code = code, ahead = AUDIT_EXTRA[4]}  -- text: cjson would format a float
  extra = extra or {}
  extra.reason, extra.ahead, extra.class = code, AUDIT_EXTRA[4], t.priority
  seat(t, w, extra)
end

-- Call a waiting ticket out of its group's queue to a window, for `code`
-- ('place', 'credit', ... or 'out_of_turn'), ahead of `ahead` earlier tickets.
local function call_ticket(t, w, code, ahead)
  queue_rem(t.group, t.m)
  redis.call('HINCRBY', K_BYSVC, t.service, -1)
  record_wait(t)
  seat_for(t, w, code, ahead)
end

-- Move a window to `status` with its `window` event. Closing completes a
-- ticket still at it; time spent open counts toward the day's figures
-- (idle = open - busy).
local function set_window_status(w, status)
  if status == 'closed' then
    local t = current_ticket(w)
    if t then finish(w, t, 'completed') end
  end
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
end

-- Issue a new waiting ticket: next number of its prefix today, queued by effective time.
-- Redis breaks score ties by member bytes: the member leads with the issue
-- time, then the hall's next event number, so a tie goes to the earlier
-- issue even within one millisecond.
local function create_ticket(k_counter, k_numbers, id, service, group, prefix, priority, e, appt)
  local n = redis.call('INCR', k_counter)
  redis.call('EXPIRE', k_counter, 172800)
  local next_seq = tonumber(redis.call('GET', K_SEQ) or '0') + 1
  local member = string.format('%015d:%012d:%s', NOW, next_seq, id)
  local t = {
    id = id, number = string.format('%s%03d', prefix, n), service = service, group = group,
    priority = priority, status = 'waiting', issued = NOW, e = tonumber(e), m = member,
  }
  if appt and appt ~= '' then t.appt = appt end
  save_ticket(t)
  redis.call('HSET', k_numbers, t.number, id)
  redis.call('EXPIRE', k_numbers, 172800)
  queue_add(group, t.e, member)
  redis.call('HINCRBY', K_BYSVC, service, 1)
  redis.call('HINCRBY', K_ISSUED, service, 1)
  redis.call('EXPIRE', K_ISSUED, 172800)
  stat('issued:' .. HOUR, 1)
  emit('issued', t, '')
  return t
end

-- The refusal when `service` already holds `cap` tickets today ('' or nil: no cap).
local function service_full(service, cap)
  if cap == '' then return nil end
  if tonumber(redis.call('HGET', K_ISSUED, service) or '0') >= tonumber(cap) then
    return err('service_full', {service = service})
  end
  return nil
end

-- Splits a comma-separated list of group ids into a set.
local function group_set(csv)
  local set = {}
  for gid in string.gmatch(csv, '[^,]+') do set[gid] = true end
  return set
end

-- ---------------------------------------------------------------- script body

-- A waiting or parked ticket whose day ended: out of its queue, `expired`.
local function expire_ticket(t)
  if t.status == 'waiting' then
    queue_rem(t.group, t.m)
    redis.call('HINCRBY', K_BYSVC, t.service, -1)
    redis.call('HDEL', K_EST, t.id)
  else
    redis.call('ZREM', K_PARKED, t.id)
  end
  t.status = 'expired'
  t.done = NOW
  save_ticket(t)
  release_person(t, false)
  notify_forget(t)
  stat('expired', 1)
  emit('expired', t, '')
end

-- Expire every waiting ticket that joined its queue before `before` (ms),
-- and every ticket parked before it; how many.
local function expire_before(before)
  local n = 0
  for _, gid in ipairs(GROUP_IDS) do
    for _, member in ipairs(redis.call('ZRANGE', QUEUE[gid], 0, -1)) do
      if member_time(member) < before then
        local t = load_ticket(member_id(member))
        if t then expire_ticket(t) else queue_rem(gid, member) end
        n = n + 1
      end
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_PARKED, '-inf', '(' .. before)) do
    local t = load_ticket(id)
    if t then expire_ticket(t) else redis.call('ZREM', K_PARKED, id) end
    n = n + 1
  end
  return n
end

-- The head of a group's queue as {member, score}, expiring heads of an
-- ended day on the way: no ticket of an earlier day is ever called, even
-- when the day's closing has not run yet.
local function live_head(gid)
  while true do
    local head = redis.call('ZRANGE', QUEUE[gid], 0, 0, 'WITHSCORES')
    if not head[1] then return nil end
    if not stale_member(head[1]) then return head end
    local t = load_ticket(member_id(head[1]))
    if t then expire_ticket(t) else queue_rem(gid, head[1]) end
  end
end

-- The live head of one side of a group's queue ('ratio'): scores in [min, max].
local function live_side_head(gid, min, max)
  while true do
    local head = redis.call('ZRANGEBYSCORE', QUEUE[gid], min, max, 'WITHSCORES', 'LIMIT', 0, 1)
    if not head[1] then return nil end
    if not stale_member(head[1]) then return head end
    local t = load_ticket(member_id(head[1]))
    if t then expire_ticket(t) else queue_rem(gid, head[1]) end
  end
end

-- What a group gives next under the hall's rule, as {member, score}: its
-- queue's head, or under 'ratio' the head of the side whose turn it is (the
-- other side's when that one is empty).
local function group_head(gid)
  if DISPATCH.rule ~= 'ratio' then return live_head(gid) end
  -- The other side is read only when the turn's side has nobody.
  if dispatch_turn(DISPATCH, K_DISPATCH, gid) < DISPATCH.rn then
    return live_side_head(gid, 0, '+inf') or live_side_head(gid, '-inf', '(0')
  end
  return live_side_head(gid, '-inf', '(0') or live_side_head(gid, 0, '+inf')
end

-- After a group's head was called ('ratio'): its turn moves on if it was
-- that side's turn, and stays when the side was empty.
local function group_called(gid, score)
  if DISPATCH.rule ~= 'ratio' then return end
  local turn = dispatch_turn(DISPATCH, K_DISPATCH, gid)
  if (tonumber(score) >= 0) == (turn < DISPATCH.rn) then
    redis.call('HSET', K_DISPATCH, gid, (turn + 1) % (DISPATCH.rn + DISPATCH.rp))
  end
end

-- Announce the hall's status with a `hall` event when it changed. The
-- calendar's first status of a hall is set silently (nothing on a screen
-- changes); a manager's close or open is always announced (`loud`).
local function announce_hall(status, loud)
  local was = redis.call('HGET', K_DAY, 'status')
  if was == status then return end
  redis.call('HSET', K_DAY, 'status', status)
  if was or loud then emit('hall', nil, '', {status = status}) end
end
