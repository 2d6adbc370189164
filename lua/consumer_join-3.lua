-- consumer_join-3.lua: add a room to a consumer, starting after the given cursor.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node (string)
-- KEYS[3] consumer left (set: rooms left while its record looked lost; see consumer_leave-3.lua)
-- ARGV[1] room   ARGV[2] cursor <ms>-<seq> (the room's head when the join began)   ARGV[3] ttl seconds
-- ARGV[4] most rooms the consumer may be in (maxRoomsPerConsumer)
-- Returns: {1 if newly added, 0 if it was in, -1 if refused (in ARGV[4] others already),
--           id of the node holding the consumer or false}
--
-- Atomic with consumer_connect on the same slot: either the connecting node
-- reads this room, or this join sees its node id and tells it.
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return {-1, redis.call('GET', KEYS[2])} -- every room is read at each handshake: see README, Limits
end
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SREM', KEYS[3], ARGV[1]) -- joined again: a restore keeps it
return {added, redis.call('GET', KEYS[2])}
