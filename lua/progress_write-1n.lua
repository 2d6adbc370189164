-- progress_write-1n.lua: a node's acknowledged cursors, into the progress hashes of rooms of one hash slot.
-- KEYS, 1 per room: progress (hash consumer id -> cursor <ms>-<seq>)
-- ARGV[1] ttl seconds   then per room, in the order of KEYS: pair count n, n consumer id, cursor pairs
-- Returns: the number of rooms written
--
-- One call per cursor flush per slot, whatever the number of rooms: a flush after unicast traffic
-- writes thousands of rooms. Each hash lives the ttl after its last write.
--
-- A cursor never moves back: a node that froze (SIGSTOP, a stalled VM) writes, when it wakes, the
-- cursors it held then, older than those the node that took its consumers over wrote since; a later
-- takeover reading them would send again everything in between (docs/RELIABILITY.md).
local function isAfter(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not bm then return true end -- not a cursor: written over
  if not am then return false end
  am, bm = tonumber(am), tonumber(bm)
  return am > bm or (am == bm and tonumber(as) > tonumber(bs))
end

local ttl = ARGV[1]
local at = 2
for k = 1, #KEYS do
  local count = tonumber(ARGV[at])
  for from = 1, count, 500 do -- unpack has a bound (the Lua C stack): 500 pairs at a time
    local to = math.min(from + 499, count)
    local ids = {}
    for i = from, to do ids[#ids + 1] = ARGV[at + 2 * i - 1] end
    local held = redis.call('HMGET', KEYS[k], unpack(ids))
    local newer = {}
    for i = from, to do
      local cursor = ARGV[at + 2 * i]
      local old = held[i - from + 1]
      if not old or isAfter(cursor, old) then
        newer[#newer + 1] = ARGV[at + 2 * i - 1]
        newer[#newer + 1] = cursor
      end
    end
    if #newer > 0 then redis.call('HSET', KEYS[k], unpack(newer)) end
  end
  redis.call('EXPIRE', KEYS[k], ttl)
  at = at + 1 + 2 * count
end
return #KEYS
