-- _dispatch.lua: the dispatch rule on Redis, prepended to the scripts that
-- call, list or place waiting tickets (not a script itself). The rule is
-- dispatcher/dispatch.py; tests/dispatch_scenarios.py checks both.
--
-- A policy is {rule = 'credit' | 'fifo' | 'ratio', rn = normal tickets per
-- turn, rp = priority tickets per turn}. Under 'ratio' a group's queue holds
-- two sides, each in arrival order: the priority classes scored below 0 (an
-- infinite credit) and the normal class at 0 and above; the group's turn
-- (0 .. rn + rp - 1, a field of the hall's dispatch hash) says whose turn it is.
-- A head is {member, score}.

local function dispatch_policy(rule, rn, rp)
  return {rule = rule, rn = tonumber(rn), rp = tonumber(rp)}
end

-- A group's turn; only 'ratio' keeps one (no read under the other rules).
local function dispatch_turn(P, dkey, gid)
  if P.rule ~= 'ratio' then return 0 end
  return tonumber(redis.call('HGET', dkey, gid) or '0')
end

-- Whether head a is taken before head b by a window comparing its groups'
-- heads: by place, or under 'ratio' by arrival (the member leads with the
-- issue time), since the two sides' places do not compare.
local function dispatch_before(P, a, b)
  if P.rule ~= 'ratio' and a[2] ~= b[2] then return a[2] < b[2] end
  return a[1] < b[1]
end

-- The position (0 = next) of a waiting ticket in its group's call order.
local function dispatch_position(P, qkey, member, score, turn)
  local rank = redis.call('ZRANK', qkey, member)
  if P.rule ~= 'ratio' or not rank then return rank end
  local np = redis.call('ZCOUNT', qkey, '-inf', '(0')
  local nn = redis.call('ZCARD', qkey) - np
  local prio = tonumber(score) < 0
  local r = prio and rank or rank - np
  local i, j, pos, t, cycle = 0, 0, 0, turn, P.rn + P.rp
  while true do
    if (t < P.rn and i < nn) or j == np then
      if not prio and i == r then return pos end
      if t < P.rn then t = (t + 1) % cycle end
      i = i + 1
    else
      if prio and j == r then return pos end
      if t >= P.rn then t = (t + 1) % cycle end
      j = j + 1
    end
    pos = pos + 1
  end
end

-- The first `limit` heads of a group's call order.
local function dispatch_sequence(P, qkey, turn, limit)
  local out = {}
  if P.rule ~= 'ratio' then
    local items = redis.call('ZRANGE', qkey, 0, limit - 1, 'WITHSCORES')
    for j = 1, #items, 2 do out[#out + 1] = {items[j], tonumber(items[j + 1])} end
    return out
  end
  local pr = redis.call('ZRANGEBYSCORE', qkey, '-inf', '(0', 'WITHSCORES', 'LIMIT', 0, limit)
  local nr = redis.call('ZRANGEBYSCORE', qkey, 0, '+inf', 'WITHSCORES', 'LIMIT', 0, limit)
  local i, j, t, cycle = 1, 1, turn, P.rn + P.rp
  while #out < limit and (i <= #nr or j <= #pr) do
    if (t < P.rn and i <= #nr) or j > #pr then
      out[#out + 1] = {nr[i], tonumber(nr[i + 1])}
      i = i + 2
      if t < P.rn then t = (t + 1) % cycle end
    else
      out[#out + 1] = {pr[j], tonumber(pr[j + 1])}
      j = j + 2
      if t >= P.rn then t = (t + 1) % cycle end
    end
  end
  return out
end

-- The order a window calls from its groups' call orders (`seqs`, one per
-- group in the window's order), up to `limit` heads: dispatch.take_order.
local function dispatch_merge(P, seqs, by_groups, limit)
  local at, out = {}, {}
  for i = 1, #seqs do at[i] = 1 end
  while #out < limit do
    local best
    for i = 1, #seqs do
      local h = seqs[i][at[i]]
      if h and (not best or dispatch_before(P, h, seqs[best][at[best]])) then
        best = i
        if by_groups then break end
      end
    end
    if not best then break end
    out[#out + 1] = seqs[best][at[best]]
    at[best] = at[best] + 1
  end
  return out
end
