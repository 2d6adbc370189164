-- progress_write-1n.lua: a node's acknowledged cursors, into the progress hashes of rooms of one hash slot.
-- KEYS, 1 per room: progress (hash consumer id -> cursor <ms>-<seq>)
-- ARGV[1] ttl seconds   then per room, in the order of KEYS: pair count n, n consumer id, cursor pairs
-- Returns: the number of rooms written
--
-- One call per cursor flush per slot, whatever the number of rooms: a flush after unicast traffic
-- writes thousands of rooms. Each hash lives the ttl after its last write.
local ttl = ARGV[1]
local at = 2
for k = 1, #KEYS do
  local count = tonumber(ARGV[at])
  local last = at + 2 * count
  for from = at + 1, last, 1000 do -- unpack has a bound (the Lua C stack): 500 pairs at a time
    redis.call('HSET', KEYS[k], unpack(ARGV, from, math.min(from + 999, last)))
  end
  redis.call('EXPIRE', KEYS[k], ttl)
  at = at + 1 + 2 * count
end
return #KEYS
