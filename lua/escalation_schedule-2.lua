-- escalation_schedule-2.lua: schedule a tracked message's escalation (webhook) for later.
-- KEYS[1] due (sorted set id -> ms it is due, or ms its claim ends)
-- KEYS[2] info (hash m:<id> message, d:<id> ms it fell due, n:<id> failed attempts)
-- ARGV[1] id   ARGV[2] delay ms   ARGV[3] message
-- ARGV[4] keep ms: how long from now both keys must live at least (the delay and the window of
--   the escalation's attempts)
-- Returns: the ms it is due (Redis' clock, which every node's claims read too)
--
-- Sent before the message's append: an escalation whose message was never
-- stored finds no track hash and is dropped when due (escalation.ts).
--
-- Both keys expire keep ms after the last escalation scheduled, if no later one pushes that out:
-- by then every pending one was sent or abandoned, unless no node looked (every webhook turned
-- off), and then the messages they hold go too instead of staying for ever. The latest one pending
-- counts too, with the same window past its due time: one that a node of a version before this
-- expiry scheduled (in a rolling upgrade) pushes out nothing itself (escalation_claim-2.lua).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local due = now + tonumber(ARGV[2])
local stamp = string.format('%.0f', due)
redis.call('ZADD', KEYS[1], stamp, ARGV[1])
redis.call('HSET', KEYS[2], 'm:' .. ARGV[1], ARGV[3], 'd:' .. ARGV[1], stamp, 'n:' .. ARGV[1], 0)
local latest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
local keep = latest - now + tonumber(ARGV[4]) - tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < keep then redis.call('PEXPIRE', key, keep) end -- no expiry yet: -1
end
return due
