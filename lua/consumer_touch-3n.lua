-- consumer_touch-3n.lua: a node keeps alive the keys of the consumers whose sessions it holds, of one hash slot.
-- KEYS, 3 per consumer: rooms (hash room -> cursor), node (the node holding the session), presence (its user's hash)
-- ARGV[1] node id   ARGV[2] ttl seconds   ARGV[3..] per consumer, in the order of KEYS: its id, its user's own room
-- Returns: {how many node keys name another node (left alone: that node took the session), then
--   the position (1, 2, ...) of each consumer whose record Redis lost: no node key, and no rooms or
--   none holding its own room (only joins made since the loss), left alone too, for the node to
--   write again with its rooms (consumer_restore-4.lua)}
--
-- The node key is how joins, kicks and reconciles find the session: it lives
-- as long as the rooms. One that expired under a live session names it again,
-- and so does a presence entry that went: Presence.count drops the entries of
-- a node that looked dead (cut off from Redis, or Redis stalled, for longer
-- than nodeTtlMs) while its sessions lived on.
-- One call per slot per refresh (a node's every consumer on one Redis), not
-- two commands per consumer: the refresh of 20,000 sessions is 40 calls.
local node, ttl = ARGV[1], ARGV[2]
local result = {0}
for k = 1, #KEYS, 3 do
  local i = (k - 1) / 3
  local holder = redis.call('GET', KEYS[k + 1])
  redis.call('EXPIRE', KEYS[k], ttl)
  if not holder and redis.call('HEXISTS', KEYS[k], ARGV[4 + 2 * i]) == 0 then
    result[#result + 1] = i + 1
  elseif holder and holder ~= node then
    result[1] = result[1] + 1
  else
    redis.call('SET', KEYS[k + 1], node, 'EX', ttl)
    redis.call('HSET', KEYS[k + 2], ARGV[3 + 2 * i], node)
  end
  redis.call('EXPIRE', KEYS[k + 2], ttl)
end
return result
