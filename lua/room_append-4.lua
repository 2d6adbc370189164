-- room_append-4.lua: give each message the room's next seq, log it, announce the batch.
-- KEYS[1] log (stream)   KEYS[2] head (hash s, t, w:<writer>)   KEYS[3] announce channel
-- KEYS[4] track (hash, see track_ack-1.lua) of a tracked message; a plain append leaves it alone
-- ARGV[1] max log length   ARGV[2] ttl seconds   ARGV[3] 'PUBLISH' or 'SPUBLISH'
-- ARGV[4] writer id ('' for none)   ARGV[5] call number (grows with each call of that writer)
-- ARGV[6] track nonce: '' for a plain append; else the call holds one message, which is tracked
-- ARGV[7..n] messages, in order
-- Returns: {ms, first seq, 1}: the entries are <ms>-<first> .. <ms>-<first + n - 7>;
--   or {ms, first seq, 0} of the writer's last call if this call was stored before.
--
-- Entry ids are <ms>-<seq>: seq is contiguous per room (gaps are detectable),
-- ms lets XTRIM MINID drop entries by age. ms never goes back, even if the
-- clock does (a failover to a replica with another clock), so ids only grow.
--
-- Exactly once: a call whose reply was lost is sent again after the reconnect
-- (ioredis resends what was unanswered). w:<writer> holds "<call> <ms> <first>"
-- of that writer's last call here, so a call numbered at or below it was
-- stored already and appends nothing: the writer's calls to a room must be
-- run in the order they were numbered (one connection to one Redis). A new
-- writer (a node that started) drops the fields of writers silent for longer
-- than the ttl.
--
-- Tracking: the nonce travels with the message, as field t of its log entry
-- and as the 4th item of the announcement, so that the node which gets the
-- consumer's ack knows, without asking Redis, that a receipt is due. The
-- track hash (s: the entry id) lives as long as the message.
local ttl = tonumber(ARGV[2])
local numbered = ARGV[4] ~= ''
local writer = 'w:' .. ARGV[4]
local call = tonumber(ARGV[5])
local head = redis.call('HMGET', KEYS[2], 's', 't', writer)
local time = redis.call('TIME')
local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seq = tonumber(head[1]) or 0
local last = tonumber(head[2]) or 0
if ms < last then ms = last end
if head[3] then
  local lastCall, lastMs, lastFirst = string.match(head[3], '^(%d+) (%d+) (%d+)$')
  if call <= tonumber(lastCall) then return {tonumber(lastMs), tonumber(lastFirst), 0} end
elseif numbered and redis.call('HLEN', KEYS[2]) > 16 then
  local fields = redis.call('HGETALL', KEYS[2])
  for i = 1, #fields, 2 do
    local since = string.match(fields[i + 1], '^%d+ (%d+) %d+$')
    if since and string.sub(fields[i], 1, 2) == 'w:' and tonumber(since) < ms - ttl * 1000 then
      redis.call('HDEL', KEYS[2], fields[i])
    end
  end
end
local first = seq + 1
local messages = {}
local track = ARGV[6]
for i = 7, #ARGV do
  seq = seq + 1
  local id = string.format('%.0f-%.0f', ms, seq)
  if track == '' then
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], id, 'm', ARGV[i])
  else
    redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], id, 'm', ARGV[i], 't', track)
    redis.call('HSET', KEYS[4], 's', id)
    redis.call('EXPIRE', KEYS[4], ttl)
  end
  messages[#messages + 1] = ARGV[i]
end
redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%.0f', ms - ttl * 1000))
local stamp = string.format('%.0f', ms)
if numbered then
  redis.call('HSET', KEYS[2], 's', seq, 't', stamp, writer, string.format('%.0f %s %.0f', call, stamp, first))
else
  redis.call('HSET', KEYS[2], 's', seq, 't', stamp)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if track == '' then
  redis.call(ARGV[3], KEYS[3], cmsgpack.pack({ms, first, messages}))
else
  redis.call(ARGV[3], KEYS[3], cmsgpack.pack({ms, first, messages, track}))
end
return {ms, first, 1}
