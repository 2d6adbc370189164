-- room_read-2n.lua: the messages of rooms after their cursors, oldest first, none older than the ttl.
-- KEYS: per room, its log (stream) and head (hash, room_append-4n.lua)
-- ARGV[1] ttl seconds   ARGV[2] max bytes of messages of the call (0: no bound): the rooms after the
--   one whose read reaches it are not read   then per room (in the order of KEYS):
--   cursor <ms>-<seq> (exclusive; '0-0' reads from the start), count, and max bytes of messages
--   (0: no bound), but always the first one
-- Returns: per room read, in order, {since, more, id1, message1, track1, end1, id2, ...}: since is
--   the ms at which this incarnation of the log began (the head's i; 0 if not known), which tells a
--   cursor of an older one (a log that expired starts again at seq 1) from one of this; more is 1 if
--   the room's bytes stopped the read before the log's end (read on from its last), else 0; track is the
--   nonce of a tracked message (room_append-4n.lua), '' for the others; end is '1' for the last
--   message of an announcement (a part of an append call), else ''. A room whose keys Redis
--   refuses (the wrong type) gets {-1, the error's text}, and the others are read all the same.
--   Fewer arrays than rooms: the rest were not read (the call's bytes), ask again. The first room
--   is always read.
--
-- Many rooms a call: a consumer that connects in 1,000 rooms new to its node reads each of them
-- (docs/performance.md). A log is read 32 entries at a time: a read of large messages holds at
-- most 32 more than it returns in the script's memory, not count of them.
local time = redis.call('TIME')
local oldest = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[1]) * 1000
local callMaxBytes = tonumber(ARGV[2])
local callBytes = 0

local function read(log, head, cursor, left, maxBytes)
  local start = '(' .. cursor
  local cursorMs = tonumber(string.match(cursor, '^(%d+)'))
  if cursorMs == nil or cursorMs < oldest then start = string.format('%.0f', oldest) end
  local since = redis.pcall('HGET', head, 'i')
  if type(since) == 'table' and since.err then return {-1, since.err}, 0 end
  local flat = {tonumber(since) or 0, 0}
  local bytes = 0
  while left > 0 do
    local want = math.min(left, 32)
    local entries = redis.pcall('XRANGE', log, start, '+', 'COUNT', want)
    if entries.err then return {-1, entries.err}, bytes end
    for i = 1, #entries do
      local fields = entries[i][2]
      if maxBytes > 0 and bytes + #fields[2] > maxBytes and #flat > 2 then
        flat[2] = 1
        return flat, bytes
      end
      bytes = bytes + #fields[2]
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
  return flat, bytes
end

local rooms = {}
for r = 1, #KEYS / 2 do
  if callMaxBytes > 0 and callBytes >= callMaxBytes then break end
  local a = 3 * r
  local flat, bytes = read(KEYS[2 * r - 1], KEYS[2 * r], ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]))
  rooms[r] = flat
  callBytes = callBytes + bytes
end
return rooms
