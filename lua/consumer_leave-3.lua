-- consumer_leave-3.lua: remove a room from a consumer.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node (string)
-- KEYS[3] consumer left (set of rooms)
-- ARGV[1] room   ARGV[2] the consumer's own room ('' if it has none)   ARGV[3] ttl seconds
-- Returns: {1 if it was a member else 0, id of the node holding the consumer or false}
--
-- A record with no node key and without the consumer's own room looks lost (Redis restarted
-- empty, was flushed, failed over to a replica that lagged): its node may still hold the
-- session and write the record again from it (consumer_restore-4.lua), which would bring this
-- room back. The leave is kept in `left` for that restore to honour; a join removes it again.
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
local node = redis.call('GET', KEYS[2])
if not node and redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return {removed, node}
