-- audit_cursor.lua: move a hall's audit cursor forward to an entry the
-- archive now has, never back: a replica that finishes its copy late (it
-- read fewer entries than another) leaves the further cursor in place.
-- KEYS[1] audit-archived   string: id of the latest audit entry copied
-- ARGV[1] the id of the last entry this copy archived, <ms>-<n>
-- Ids compare as numbers (ms, then n); as text '…-10' would sort before '…-9'.
-- Returns 1 if the cursor moved, 0 if it was there or past it already.
local function parse(id)
  local ms, n = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(n)
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cms, cn = parse(cur)
  local ms, n = parse(ARGV[1])
  if cms and (cms > ms or (cms == ms and cn >= n)) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
