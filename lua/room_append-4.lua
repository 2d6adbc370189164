-- room_append-4.lua: give each message the room's next seq, log it, announce the batch.
-- KEYS[1] log (stream)   KEYS[2] head (hash s, t, b, w:<writer>)   KEYS[3] announce channel
-- KEYS[4] track (hash, see track_ack-1.lua) of a tracked message; a plain append leaves it alone
-- ARGV[1] max log length   ARGV[2] max log bytes   ARGV[3] ttl seconds   ARGV[4] 'PUBLISH' or 'SPUBLISH'
-- ARGV[5] writer id ('' for none)   ARGV[6] call number (grows with each call of that writer)
-- ARGV[7] after: the writer's call to this room that must be stored before this one (0: none)
-- ARGV[8] track nonce: '' for a plain append; else the call holds one message, which is tracked
-- ARGV[9..n] messages, in order
-- Returns: {ms, first seq, 1}: the entries are <ms>-<first> .. <ms>-<first + n - 9>;
--   or {ms, first seq, 0} of the writer's last call if this call was stored before;
--   or {0, 0, -1}, nothing stored: call `after` is not stored yet (send this one again after it).
--
-- Entry ids are <ms>-<seq>: seq is contiguous per room (gaps are detectable),
-- ms lets the trim drop entries by age. ms never goes back, even if the
-- clock does (a failover to a replica with another clock), so ids only grow.
--
-- The log is bounded by length, bytes and age: the oldest entries go while
-- there are more than max length, their messages hold more than max bytes
-- (b: the bytes of the messages in the log), or they are older than the ttl.
-- Each entry is read once more when it goes (its size), so a trim costs what
-- it drops; an append that drops nothing reads nothing.
--
-- Exactly once: a call whose reply was lost is sent again (by ioredis after
-- the reconnect, or by the writer). w:<writer> holds "<call> <ms> <first>" of
-- that writer's last call here, so a call numbered at or below it was stored
-- already and appends nothing. That needs the writer's calls to a room to run
-- in the order they were numbered: one connection to one Redis keeps it; where
-- calls may be sent again out of order (a Cluster failing over), each call
-- names the one it must follow (`after`), and is refused until that one is
-- stored. A new writer (a node that started) drops the fields of writers
-- silent for longer than the ttl.
--
-- The call's last entry has a field e: a reader cuts batches where the live
-- announcement of the call was cut (see markChunkEnds in src/broker/batch.ts).
--
-- Tracking: the nonce travels with the message, as field t of its log entry
-- and as the 4th item of the announcement, so that the node which gets the
-- consumer's ack knows, without asking Redis, that a receipt is due. The
-- track hash (s: the entry id) lives as long as the message.

-- The bytes of the messages in a log whose count is missing (written by a version without it).
local function countBytes(log)
  local total, after = 0, '-'
  repeat
    local entries = redis.call('XRANGE', log, after, '+', 'COUNT', 512)
    for _, entry in ipairs(entries) do
      total = total + #entry[2][2]
      after = '(' .. entry[1]
    end
  until #entries < 512
  return total
end

local maxLen = tonumber(ARGV[1])
local maxBytes = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local numbered = ARGV[5] ~= ''
local writer = 'w:' .. ARGV[5]
local call = tonumber(ARGV[6])
local after = tonumber(ARGV[7])
local head = redis.call('HMGET', KEYS[2], 's', 't', writer, 'b')
local time = redis.call('TIME')
local ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local seq = tonumber(head[1]) or 0
local last = tonumber(head[2]) or 0
if ms < last then ms = last end
if head[3] then
  local lastCall, lastMs, lastFirst = string.match(head[3], '^(%d+) (%d+) (%d+)$')
  lastCall = tonumber(lastCall)
  if call <= lastCall then return {tonumber(lastMs), tonumber(lastFirst), 0} end
  if lastCall < after then return {0, 0, -1} end
elseif after > 0 then
  return {0, 0, -1}
elseif numbered and redis.call('HLEN', KEYS[2]) > 16 then
  local fields = redis.call('HGETALL', KEYS[2])
  for i = 1, #fields, 2 do
    local since = string.match(fields[i + 1], '^%d+ (%d+) %d+$')
    if since and string.sub(fields[i], 1, 2) == 'w:' and tonumber(since) < ms - ttl * 1000 then
      redis.call('HDEL', KEYS[2], fields[i])
    end
  end
end
local length = redis.call('XLEN', KEYS[1])
local bytes = 0
if length > 0 then bytes = tonumber(head[4]) or countBytes(KEYS[1]) end
local first = seq + 1
local messages = {}
local track = ARGV[8]
for i = 9, #ARGV do
  seq = seq + 1
  local id = string.format('%.0f-%.0f', ms, seq)
  local fields = {'m', ARGV[i]}
  if track ~= '' then
    fields[#fields + 1] = 't'
    fields[#fields + 1] = track
    redis.call('HSET', KEYS[4], 's', id)
    redis.call('EXPIRE', KEYS[4], ttl)
  end
  if i == #ARGV then
    fields[#fields + 1] = 'e'
    fields[#fields + 1] = '1'
  end
  redis.call('XADD', KEYS[1], id, unpack(fields))
  messages[#messages + 1] = ARGV[i]
  bytes = bytes + #ARGV[i]
end
length = length + #messages
-- Trim: the oldest entries go while the log is too long or too big, or they are older than
-- the ttl. Within length and bytes, only entries older than the ttl are read.
local cutoff = ms - ttl * 1000
local gone = nil -- id of the newest entry that goes
local stop = false
while not stop and length > 0 do
  local from = gone and '(' .. gone or '-'
  local entries
  if length > maxLen or bytes > maxBytes then
    entries = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', math.max(1, length - maxLen))
  else
    entries = redis.call('XRANGE', KEYS[1], from, string.format('(%.0f-0', cutoff), 'COUNT', 64)
  end
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local isOld = tonumber(string.match(entry[1], '^%d+')) < cutoff
    if length <= maxLen and bytes <= maxBytes and not isOld then
      stop = true
      break
    end
    gone, length, bytes = entry[1], length - 1, bytes - #entry[2][2]
  end
end
if gone then
  local goneMs, goneSeq = string.match(gone, '^(%d+)-(%d+)$')
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%s-%.0f', goneMs, tonumber(goneSeq) + 1))
end
local stamp = string.format('%.0f', ms)
if numbered then
  redis.call('HSET', KEYS[2], 's', seq, 't', stamp, 'b', bytes, writer, string.format('%.0f %s %.0f', call, stamp, first))
else
  redis.call('HSET', KEYS[2], 's', seq, 't', stamp, 'b', bytes)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if track == '' then
  redis.call(ARGV[4], KEYS[3], cmsgpack.pack({ms, first, messages}))
else
  redis.call(ARGV[4], KEYS[3], cmsgpack.pack({ms, first, messages, track}))
end
return {ms, first, 1}
