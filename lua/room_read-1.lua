-- room_read-1.lua: the messages of a room after a cursor, oldest first, none older than the ttl.
-- KEYS[1] log (stream)
-- ARGV[1] cursor <ms>-<seq> (exclusive; '0-0' reads from the start)   ARGV[2] count   ARGV[3] ttl seconds
-- Returns: {id1, message1, track1, id2, message2, track2, ...}: track is the nonce of a tracked
--   message (room_append-4.lua), '' for the others
local time = redis.call('TIME')
local oldest = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) - tonumber(ARGV[3]) * 1000
local start = '(' .. ARGV[1]
local cursorMs = tonumber(string.match(ARGV[1], '^(%d+)'))
if cursorMs == nil or cursorMs < oldest then start = string.format('%.0f', oldest) end
local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[2])
local flat = {}
for i = 1, #entries do
  local fields = entries[i][2]
  flat[#flat + 1] = entries[i][1]
  flat[#flat + 1] = fields[2]
  flat[#flat + 1] = fields[4] or ''
end
return flat
