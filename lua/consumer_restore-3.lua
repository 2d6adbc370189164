-- consumer_restore-3.lua: a node writes again the record of a consumer whose session it holds,
-- if Redis lost it (restarted empty, flushed, failed over to a replica that lagged, evicted it).
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node   KEYS[3] user presence
-- ARGV[1] node id   ARGV[2] ttl seconds   ARGV[3] consumer id   ARGV[4..] room, cursor, room, cursor...
-- Returns: 1 written again; 0 left alone: the node key or the rooms are there
--
-- Lost means neither the node key nor the rooms hash is there: a live record has both (its own
-- room is always in its rooms), and a release leaves the rooms. Anything there was written since
-- the loss (a join, another node's connect), which the caller follows instead (RoomSync).
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
if #ARGV > 3 then
  -- 500 pairs a HSET: Lua unpacks no more than about 8,000 values at once, and a consumer's rooms are not bounded
  for from = 4, #ARGV, 1000 do
    redis.call('HSET', KEYS[1], unpack(ARGV, from, math.min(from + 999, #ARGV)))
  end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
