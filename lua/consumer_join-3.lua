-- consumer_join-3.lua: add a room to a consumer, starting after the given cursor.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node (string)
-- KEYS[3] consumer left (set: rooms left while its record looked lost; see consumer_leave-3.lua)
-- ARGV[1] room   ARGV[2] cursor <ms>-<seq> (the room's head when the join began)   ARGV[3] ttl seconds
-- Returns: {1 if newly added else 0, id of the node holding the consumer or false}
--
-- Atomic with consumer_connect on the same slot: either the connecting node
-- reads this room, or this join sees its node id and tells it.
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[3], ARGV[1]) -- joined again: a restore keeps it
return {added, redis.call('GET', KEYS[2])}
