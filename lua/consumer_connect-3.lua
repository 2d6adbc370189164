-- consumer_connect-3.lua: a node takes a consumer's live session; read where it stands.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node   KEYS[3] consumer inflight
-- ARGV[1] node id   ARGV[2] ttl seconds   ARGV[3] room to join if absent   ARGV[4] its cursor
-- Returns: {previous node id or false, inflight batch record or false, room1, cursor1, room2, cursor2, ...}
local previous = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local inflight = redis.call('GET', KEYS[3])
local result = {previous, inflight}
local rooms = redis.call('HGETALL', KEYS[1])
for i = 1, #rooms do result[#result + 1] = rooms[i] end
return result
