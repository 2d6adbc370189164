-- track_ack-1.lua: record a consumer's acknowledgement of a tracked message (its receipt).
-- KEYS[1] track (hash: s the log entry id <ms>-<seq>, n acks so far, e ms it was escalated,
--                c:<consumer id> "<user id> <acked at ms>" per consumer that acked)
-- ARGV[1] consumer id   ARGV[2] "<user id> <acked at ms>"
-- Returns: 1 if recorded; 0 if this consumer's ack is recorded already (a batch acked again after
--   a reconnect keeps the first time) or the message is not tracked any more (expired)
--
-- The hash is made by room_append-4n.lua with the message's ttl; a receipt never makes it
-- (it would then live for ever).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'n', 1)
return 1
