-- consumer_restore-4.lua: a node writes again the record of a consumer whose session it holds,
-- if Redis lost it (restarted empty, flushed, failed over to a replica that lagged, evicted it).
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node   KEYS[3] user presence
-- KEYS[4] consumer left (set: rooms left since the loss, consumer_leave-3.lua)
-- ARGV[1] node id   ARGV[2] ttl seconds   ARGV[3] consumer id   ARGV[4] the user's own room
-- ARGV[5..] room, cursor, room, cursor...
-- Returns: 1 written again; 0 left alone: the node key is there, or rooms holding the own room
--
-- Lost means no node key, and no rooms or rooms without the consumer's own room: a live record
-- has both, its own room in its rooms (consumer_connect joins it), and a release leaves the rooms.
-- Rooms without the own room are joins made since the loss (consumer_join creates the hash): the
-- session's rooms are added to them, at the session's cursors (it never left those), and the
-- caller follows the joined ones (RoomSync). Anything else there was written since the loss
-- (another node's connect), which the caller follows instead.
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('HEXISTS', KEYS[1], ARGV[4]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
-- The session's rooms but those left since the loss (the session had not heard of those leaves).
-- Not its own room: a connected consumer is in it (its connect joins it), and a leave of it kept
-- here may predate that connect (made while it was offline; the set outlives a connect in a
-- snapshot taken between the two).
local left = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[4])) do left[room] = true end
left[ARGV[4]] = nil
redis.call('DEL', KEYS[4])
local kept = {}
for i = 5, #ARGV - 1, 2 do
  if not left[ARGV[i]] then
    kept[#kept + 1] = ARGV[i]
    kept[#kept + 1] = ARGV[i + 1]
  end
end
-- 500 pairs a HSET: Lua unpacks no more than about 8,000 values at once, and a consumer's rooms are not bounded
for from = 1, #kept, 1000 do
  redis.call('HSET', KEYS[1], unpack(kept, from, math.min(from + 999, #kept)))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[2])
return 1
