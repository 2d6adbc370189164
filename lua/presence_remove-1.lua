-- presence_remove-1.lua: drop a consumer from its user's live set, unless another node took it since.
-- KEYS[1] user presence (hash consumerId -> node id)
-- ARGV[1] consumer id   ARGV[2] node id
-- Returns: 1 if removed, else 0
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
