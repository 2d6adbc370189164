-- cursor_commit-5.lua: record a consumer's acknowledged cursors, and release it when it leaves.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node   KEYS[3] consumer inflight
-- KEYS[4] user presence (hash consumer id -> node id)   KEYS[5] progress of the user's own room
-- ARGV[1] ttl seconds   ARGV[2] node id to release ('' to keep the session)
-- ARGV[3] inflight batch record to keep ('' for none)   ARGV[4] consumer id
-- ARGV[5..n] room, cursor, room, cursor, ...
-- Returns: {number of cursors that moved, 1 if the node key named the releasing node (released), else 0}
--
-- A cursor only moves forward, and only for rooms the consumer is still in:
-- a late write from a node that lost the consumer, or after a leave, changes nothing.
-- A release drops the node key and the presence entry only where they still
-- name the releasing node, so a late release never undoes a newer connect;
-- then the own room's progress entry goes too (the consumer's own cursors are
-- the truth now), and the caller drops its other rooms' (released: 1). A late
-- one leaves them to the node holding the consumer now, which may have written
-- them since.
local function newer(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b or '0-0', '^(%d+)-(%d+)$')
  if bms == nil then return true end
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams > bms or (ams == bms and aseq > bseq)
end
local moved, released = 0, 0
for i = 5, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current and newer(ARGV[i + 1], current) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    moved = moved + 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  if redis.call('GET', KEYS[2]) == ARGV[2] then
    redis.call('DEL', KEYS[2])
    if ARGV[3] ~= '' then
      redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[1])
    else
      redis.call('DEL', KEYS[3])
    end
    redis.call('HDEL', KEYS[5], ARGV[4])
    released = 1
  end
  if redis.call('HGET', KEYS[4], ARGV[4]) == ARGV[2] then redis.call('HDEL', KEYS[4], ARGV[4]) end
end
return {moved, released}
