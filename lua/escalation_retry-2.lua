-- escalation_retry-2.lua: an escalation attempt failed: make it due again after a delay.
-- KEYS[1] due   KEYS[2] info   (see escalation_schedule-2.lua)
-- ARGV[1] id   ARGV[2] the caller's lease end (from escalation_claim-2.lua)   ARGV[3] delay ms
-- Returns: 1 if rescheduled; 0 if the caller's claim had lapsed (another node holds it now)
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) ~= tonumber(ARGV[2]) then return 0 end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[1])
redis.call('HINCRBY', KEYS[2], 'n:' .. ARGV[1], 1)
return 1
