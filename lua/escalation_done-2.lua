-- escalation_done-2.lua: an escalation is over (sent, acknowledged in time, or given up).
-- KEYS[1] due   KEYS[2] info   (see escalation_schedule-2.lua)
-- ARGV[1] id   ARGV[2] the caller's lease end (from escalation_claim-2.lua)
-- Returns: 1 if removed; 0 if the caller's claim had lapsed (the node holding it now decides)
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], 'm:' .. ARGV[1], 'd:' .. ARGV[1], 'n:' .. ARGV[1])
return 1
