-- consumer_connect-5.lua: a node takes a consumer's live session, unless another node holds it; read where it stands.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node   KEYS[3] consumer inflight
-- KEYS[4] user presence (hash consumer id -> node id)   KEYS[5] head of the user's own room (hash s, t)
-- ARGV[1] node id   ARGV[2] ttl seconds   ARGV[3] consumer id   ARGV[4] the user's own room
-- ARGV[5] '1' to take the session whatever node holds it, '' only if none other does
-- Returns: {0, holder} if another node holds it and ARGV[5] is '': nothing changed;
--   else {1, previous node id or false, inflight batch record or false, own room's head <ms>-<seq>,
--   room1, cursor1, room2, cursor2, ...}
--
-- One call per handshake: the keys of a user share its slot (src/redis/keys.ts).
-- The own room is joined at its head if absent, as consumer_join does; the
-- head lets the node skip reading that room's log when the consumer is at it.
local previous = redis.call('GET', KEYS[2])
if previous and previous ~= ARGV[1] and ARGV[5] ~= '1' then return {0, previous} end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local head = redis.call('HMGET', KEYS[5], 's', 't')
local cursor = (head[2] or '0') .. '-' .. (head[1] or '0')
redis.call('HSETNX', KEYS[1], ARGV[4], cursor)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[4], ARGV[2])
local result = {1, previous, redis.call('GET', KEYS[3]), cursor}
local rooms = redis.call('HGETALL', KEYS[1])
for i = 1, #rooms do result[#result + 1] = rooms[i] end
return result
