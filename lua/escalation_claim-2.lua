-- escalation_claim-2.lua: take the escalations that are due, each leased to the caller.
-- KEYS[1] due   KEYS[2] info   (see escalation_schedule-2.lua)
-- ARGV[1] lease ms   ARGV[2] most ids to take
-- ARGV[3] window ms: how long past its due time an escalation may still be attempted (both keys
--   are kept that long past the latest one pending)
-- Returns: {now ms, lease end ms, id1, message1, due1, attempts1, id2, ...}
--
-- Once across all nodes: a claimed id's score becomes the lease's end, so no
-- other node sees it due until then. The caller finishes it (escalation_done)
-- or schedules its retry (escalation_retry) before the lease ends, both only if
-- the score is still its lease end; a node that died holding it lets it fall
-- due again, and another node claims it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local leaseEnd = now + tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local result = {now, leaseEnd}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], string.format('%.0f', leaseEnd), id)
  local info = redis.call('HMGET', KEYS[2], 'm:' .. id, 'd:' .. id, 'n:' .. id)
  result[#result + 1] = id
  result[#result + 1] = info[1] or ''
  result[#result + 1] = tonumber(info[2]) or now
  result[#result + 1] = tonumber(info[3]) or 0
end
-- A node of a version before the keys' expiry (a rolling upgrade) schedules without pushing it
-- out (escalation_schedule-2.lua): the next claim does, or the keys could expire under it.
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if latest then
  local keep = tonumber(latest) - now + tonumber(ARGV[3])
  for _, key in ipairs(KEYS) do
    local ttl = redis.call('PTTL', key)
    if ttl >= 0 and ttl < keep then redis.call('PEXPIRE', key, keep) end -- none yet: -1, left as it is
  end
end
return result
