-- room_append-4n.lua: append messages to the rooms of one hash slot; each message gets its room's
-- next seq, is logged, and each room's part is announced on the room's channel.
-- KEYS, 4 per part (a room's messages): log (stream), head (hash, below), announce channel,
--   track (hash, see track_ack-1.lua) of a tracked message; a plain part leaves it alone
-- ARGV[1] max log length   ARGV[2] max log bytes   ARGV[3] ttl seconds   ARGV[4] 'PUBLISH' or 'SPUBLISH'
-- ARGV[5] writer id ('' for none)   ARGV[6] call number (grows with each call of that writer)
-- then per part, in the order of KEYS: after (the writer's call to this room that must be stored
--   before this one, 0: none), track nonce ('' for a plain part; else the part is one message,
--   which is tracked), message count, the messages in order
-- Returns: {-1}, nothing stored: a call to follow is not stored yet (send this one again after it);
--   else {1, then per part ms, first seq, status}: status 1 stored, its entries <ms>-<first> ..
--   <ms>-<first + count - 1>; 0 stored before (this call number), ms and first of that call;
--   -2 refused, the error text instead of first: the room's keys are not what this script writes
--   (one broken room fails its own part, not the others')
--
-- One call per slot for the batches a writer has in one turn: batches to many rooms are one round
-- trip, and each part costs HMGET, XLEN, an XADD per message, HSET and the announcement; what is
-- not due is not done.
--
-- The head hash: s last seq, t its ms, b bytes of the messages in the log, o ms of the oldest
-- entry (or a bound below it), x ms when log and head expire, i ms of seq 1 (when this incarnation
-- of the log began), w:<writer>. A head written by an older version lacks o or x: the age is then
-- looked at, or the expiry set, once; one without i says nothing of its incarnation (room_read).
--
-- Entry ids are <ms>-<seq>: seq is contiguous per room (gaps are detectable), ms lets the trim
-- drop entries by age. ms never goes back, even if the clock does (a failover to a replica with
-- another clock), so ids only grow.
--
-- The log is bounded by length, bytes and age: the oldest entries go while there are more than
-- max length, their messages hold more than max bytes, or they are older than the ttl. Each entry
-- is read once more when it goes (its size), so a trim costs what it drops; the age is looked at
-- only once the oldest entry may have passed it (o). Log and head live at least ttl after the last
-- append: their expiry is pushed to ttl + ttl / 8 ahead whenever it is less than ttl ahead (x).
--
-- Exactly once: a call whose reply was lost is sent again (by ioredis after the reconnect, or by
-- the writer). w:<writer> holds "<call> <ms> <first>" of that writer's last call to the room, so
-- a part whose call is numbered at or below it was stored already and appends nothing. That needs
-- the writer's calls to a room to run in the order they were numbered: one connection to one
-- Redis keeps it; where calls may be sent again out of order (a Cluster failing over), each part
-- names the call it must follow (after), and the whole call is refused until every one of those
-- is stored. A new writer (a node that started) drops the fields of writers silent for longer
-- than the ttl.
--
-- Each part is announced on its own, and its last entry has a field e: a reader cuts batches where
-- the live announcement was cut (see markChunkEnds in src/broker/batch.ts).
--
-- Tracking: the nonce travels with the message, as field t of its log entry and as the 4th item
-- of the announcement, so that the node which gets the consumer's ack knows, without asking Redis,
-- that a receipt is due. The track hash (s: the entry id) lives as long as the message.

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
local publish = ARGV[4]
local numbered = ARGV[5] ~= ''
local writer = 'w:' .. ARGV[5]
local call = tonumber(ARGV[6])
local callText = string.format('%.0f', call)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local nowText = string.format('%.0f', now) -- most parts' ms: formatted once a call

-- Whether a < b, for whole numbers as this script writes them (ms, call numbers: digits, no leading
-- zero), by their digits: a head's fields are compared without tonumber, which is a strtod twice.
local function isLess(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

-- The texts a head's ms fields are compared with, for a part stored at ms (once a call for now).
local function bounds(ms)
  return string.format('%.0f', ms - ttl * 1000), string.format('%.0f', ms + ttl * 1000)
end
local nowCutoffText, nowDueText = bounds(now)

-- Reads what append() needs of a part's room: its head's fields and its log's length. `run` is
-- redis.pcall where the keys may be broken (a reply then holds the error), else redis.call.
local function readHead(part, run)
  part.head = run('HMGET', part.headKey, 's', 't', writer, 'b', 'o', 'x')
  part.length = run('XLEN', part.log)
end

-- Reads a part's head and decides: 'append', 'stored' (before; the head says when), 'broken'
-- (with the error), or 'refused' (a call it must follow is not stored yet).
local function decide(part)
  readHead(part, redis.pcall)
  local broken = part.head.err or (type(part.length) == 'table' and part.length.err)
  if broken then return 'broken', broken end
  local written = part.head[3]
  if written then
    local lastCall = string.match(written, '^(%d+) ')
    if not isLess(lastCall, callText) then return 'stored' end
    if part.after > 0 and tonumber(lastCall) < part.after then return 'refused' end
  elseif part.after > 0 then
    return 'refused'
  end
  return 'append'
end

-- Appends a part whose head was read by decide(), or again if this call appended to its room.
local function append(part)
  local log, headKey, channel, trackKey = part.log, part.headKey, part.channel, part.trackKey
  local head, length = part.head, part.length
  local ms, stamp, cutoffText, dueText = now, nowText, nowCutoffText, nowDueText
  local seq = tonumber(head[1]) or 0
  local last = head[2]
  if last and isLess(nowText, last) then -- the clock went back: ms stays where it was
    ms = tonumber(last) or now
    stamp = string.format('%.0f', ms)
    cutoffText, dueText = bounds(ms)
  end
  if not head[3] and numbered and redis.call('HLEN', headKey) > 18 then
    local fields = redis.call('HGETALL', headKey)
    for i = 1, #fields, 2 do
      local since = string.match(fields[i + 1], '^%d+ (%d+) %d+$')
      if since and string.sub(fields[i], 1, 2) == 'w:' and tonumber(since) < ms - ttl * 1000 then
        redis.call('HDEL', headKey, fields[i])
      end
    end
  end
  local bytes, oldestText = 0, nil
  if length > 0 then
    bytes = tonumber(head[4]) or countBytes(log)
    oldestText = head[5] or nil
  end
  -- Numbers become text once each: every conversion is a sprintf, a good part of the script's cost.
  local first = seq + 1
  local prefix = stamp .. '-'
  local seqText
  local messages = {}
  local track = part.track
  for i = part.from, part.to do
    seq = seq + 1
    seqText = string.format('%.0f', seq)
    local id = prefix .. seqText
    local message = ARGV[i]
    if track ~= '' then -- a tracked part is one message
      redis.call('HSET', trackKey, 's', id)
      redis.call('EXPIRE', trackKey, ttl)
      redis.call('XADD', log, id, 'm', message, 't', track, 'e', '1')
    elseif i == part.to then -- the announcement's last: a reader cuts chunks where it did
      redis.call('XADD', log, id, 'm', message, 'e', '1')
    else
      redis.call('XADD', log, id, 'm', message)
    end
    messages[i - part.from + 1] = message
    bytes = bytes + #message
  end
  seqText = seqText or string.format('%.0f', seq) -- a part of no messages
  local firstText = first == seq and seqText or string.format('%.0f', first)
  local isNew = length == 0 -- a log XADD makes anew has no expiry yet
  local oldestMoved, oldest = isNew, ms
  if isNew then oldestText = stamp end
  length = length + (part.to - part.from + 1)
  -- Trim: the oldest entries go while the log is too long or too big, or they are older than
  -- the ttl. Within length and bytes, only entries older than the ttl are read.
  local cutoff = ms - ttl * 1000
  if length > maxLen or bytes > maxBytes or not oldestText or isLess(oldestText, cutoffText) then
    oldestMoved = true
    local gone = nil -- id of the newest entry that goes
    oldest = cutoff -- no entry older than the ttl stays; the first one kept says more if it is read
    while length > 0 do
      local from = gone and '(' .. gone or '-'
      local entries
      if length > maxLen or bytes > maxBytes then
        entries = redis.call('XRANGE', log, from, '+', 'COUNT', math.max(1, length - maxLen))
      else
        entries = redis.call('XRANGE', log, from, '(' .. cutoffText .. '-0', 'COUNT', 64)
      end
      if #entries == 0 then break end
      local kept = nil
      for _, entry in ipairs(entries) do
        local entryMs = tonumber(string.match(entry[1], '^%d+'))
        if length <= maxLen and bytes <= maxBytes and entryMs >= cutoff then
          kept = entryMs
          break
        end
        gone, length, bytes = entry[1], length - 1, bytes - #entry[2][2]
      end
      if kept then
        oldest = kept
        break
      end
    end
    if gone then
      local goneMs, goneSeq = string.match(gone, '^(%d+)-(%d+)$')
      redis.call('XTRIM', log, 'MINID', string.format('%s-%.0f', goneMs, tonumber(goneSeq) + 1))
    end
  end
  local fields = {'s', seqText, 't', stamp, 'b', bytes}
  if first == 1 then -- a new incarnation of the log (no head: it expired, or never was)
    fields[#fields + 1] = 'i'
    fields[#fields + 1] = stamp
  end
  if oldestMoved then
    fields[#fields + 1] = 'o'
    fields[#fields + 1] = string.format('%.0f', oldest)
  end
  local expires = head[6]
  local life = nil
  if isNew or not expires or isLess(expires, dueText) then
    life = ttl + math.ceil(ttl / 8)
    fields[#fields + 1] = 'x'
    fields[#fields + 1] = string.format('%.0f', ms + life * 1000)
  end
  if numbered then
    fields[#fields + 1] = writer
    fields[#fields + 1] = callText .. ' ' .. stamp .. ' ' .. firstText
  end
  redis.call('HSET', headKey, unpack(fields))
  if life then
    redis.call('EXPIRE', log, life)
    redis.call('EXPIRE', headKey, life)
  end
  if part.track == '' then
    redis.call(publish, channel, cmsgpack.pack({ms, first, messages}))
  else
    redis.call(publish, channel, cmsgpack.pack({ms, first, messages, part.track}))
  end
  return ms, first
end

-- First every part is read and decided, so that a refused call writes nothing.
local parts = {}
local at = 7
for k = 1, #KEYS, 4 do
  local count = ARGV[at + 2] + 0 -- written by the broker: a number (+ 0 is one strtod, tonumber two)
  local part = {
    log = KEYS[k], headKey = KEYS[k + 1], channel = KEYS[k + 2], trackKey = KEYS[k + 3],
    after = ARGV[at] == '0' and 0 or tonumber(ARGV[at]), -- '0' (none) most often: no strtod
    track = ARGV[at + 1], from = at + 3, to = at + 2 + count,
  }
  part.decision, part.error = decide(part)
  if part.decision == 'refused' then return {-1} end
  parts[#parts + 1] = part
  at = at + 3 + count
end
local result = {1}
local n = 1
local appended = {} -- heads this call appended to: a room's next part here reads them again
for _, part in ipairs(parts) do
  if part.decision == 'append' then
    if appended[part.headKey] then readHead(part, redis.call) end
    local ms, first = append(part)
    appended[part.headKey] = true
    result[n + 1], result[n + 2], result[n + 3] = ms, first, 1
  elseif part.decision == 'stored' then
    local _, lastMs, lastFirst = string.match(part.head[3], '^(%d+) (%d+) (%d+)$')
    result[n + 1], result[n + 2], result[n + 3] = tonumber(lastMs), tonumber(lastFirst), 0
  else
    result[n + 1], result[n + 2], result[n + 3] = 0, part.error, -2
  end
  n = n + 3
end
return result
