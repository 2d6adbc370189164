-- consumer_leave-2.lua: remove a room from a consumer.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node (string)
-- ARGV[1] room
-- Returns: {1 if it was a member else 0, id of the node holding the consumer or false}
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
return {removed, redis.call('GET', KEYS[2])}
