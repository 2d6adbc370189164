-- room_read-2.lua: the messages of a room after a cursor, oldest first, none older than the ttl.
-- KEYS[1] log (stream)   KEYS[2] head (hash, room_append-4n.lua)
-- ARGV[1] cursor <ms>-<seq> (exclusive; '0-0' reads from the start)   ARGV[2] count   ARGV[3] ttl seconds
-- ARGV[4] max bytes of messages (0: no bound), but always the first one
-- Returns: {since, id1, message1, track1, end1, id2, ...}: since is the ms at which this
--   incarnation of the log began (the head's i; 0 if not known), which tells a cursor of an older
--   one (a log that expired starts again at seq 1) from one of this; track is the nonce of a
--   tracked message (room_append-4n.lua), '' for the others; end is '1' for the last message of an
--   announcement (a part of an append call), else ''
--
-- The log is read 32 entries at a time: a read of large messages holds at
-- most 32 more than it returns in the script's memory, not count of them.
local time = redis.call('TIME')
local oldest = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[3]) * 1000
local start = '(' .. ARGV[1]
local cursorMs = tonumber(string.match(ARGV[1], '^(%d+)'))
if cursorMs == nil or cursorMs < oldest then start = string.format('%.0f', oldest) end
local left = tonumber(ARGV[2])
local maxBytes = tonumber(ARGV[4])
local bytes = 0
local flat = {tonumber(redis.call('HGET', KEYS[2], 'i')) or 0}
while left > 0 do
  local want = math.min(left, 32)
  local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', want)
  for i = 1, #entries do
    local fields = entries[i][2]
    bytes = bytes + #fields[2]
    if maxBytes > 0 and bytes > maxBytes and #flat > 1 then return flat end
    local track, ends = '', ''
    for f = 3, #fields, 2 do
      if fields[f] == 't' then track = fields[f + 1] elseif fields[f] == 'e' then ends = '1' end
    end
    flat[#flat + 1] = entries[i][1]
    flat[#flat + 1] = fields[2]
    flat[#flat + 1] = track
    flat[#flat + 1] = ends
    start = '(' .. entries[i][1]
  end
  left = left - #entries
  if #entries < want then break end
end
return flat
