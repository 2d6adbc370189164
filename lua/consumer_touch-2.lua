-- consumer_touch-2.lua: a node that holds a consumer's session keeps its keys alive.
-- KEYS[1] consumer rooms (hash room -> cursor)   KEYS[2] consumer node   ARGV[1] node id   ARGV[2] ttl seconds
-- Returns: 1 if the node key names this node (now for another ttl), 0 if it names another node
--
-- The node key is how joins, kicks and reconciles find the session: it lives
-- as long as the rooms. One that expired under a live session names it again;
-- one that names another node is left alone (that node took the session).
redis.call('EXPIRE', KEYS[1], ARGV[2])
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
