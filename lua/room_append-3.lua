-- room_append-3.lua: give each message the room's next seq, log it, announce the batch.
-- KEYS[1] log (stream)   KEYS[2] head (hash s, t)   KEYS[3] announce channel
-- ARGV[1] max log length   ARGV[2] ttl seconds   ARGV[3] 'PUBLISH' or 'SPUBLISH'
-- ARGV[4..n] messages, in order
-- Returns: {ms, first seq}: the entries are <ms>-<first> .. <ms>-<first + n - 4>
--
-- Entry ids are <ms>-<seq>: seq is contiguous per room (gaps are detectable),
-- ms lets XTRIM MINID drop entries by age. ms never goes back, even if the
-- clock does (a failover to a replica with another clock), so ids only grow.
local time = redis.call('TIME')
local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local head = redis.call('HMGET', KEYS[2], 's', 't')
local seq = tonumber(head[1]) or 0
local last = tonumber(head[2]) or 0
if ms < last then ms = last end
local ttl = tonumber(ARGV[2])
local first = seq + 1
local messages = {}
for i = 4, #ARGV do
  seq = seq + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], string.format('%.0f-%.0f', ms, seq), 'm', ARGV[i])
  messages[#messages + 1] = ARGV[i]
end
redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', ms - ttl * 1000))
redis.call('HSET', KEYS[2], 's', seq, 't', string.format('%.0f', ms))
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call(ARGV[3], KEYS[3], cmsgpack.pack({ms, first, messages}))
return {ms, first}
