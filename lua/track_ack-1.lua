-- track_ack-1.lua: record a consumer's acknowledgement of a tracked message (its receipt).
-- KEYS[1] track (hash: s the log entry id <ms>-<seq>, n receipts recorded, m acks past the most
--                receipts, b the most receipts, e ms it was escalated,
--                c:<consumer id> "<user id> <acked at ms>" per consumer whose ack is recorded)
-- ARGV[1] consumer id   ARGV[2] "<user id> <acked at ms>"   ARGV[3] most receipts recorded (the
--   node's trackMaxReceipts; the first call's is kept in b and used by every later one)
-- Returns: 1 if recorded; -1 if counted in m only (the message has its most receipts); 0 if this
--   consumer's ack is recorded already (a batch acked again after a reconnect keeps the first
--   time) or the message is not tracked any more (expired)
--
-- The hash is made by room_append-4n.lua with the message's ttl; a receipt never makes it
-- (it would then live for ever). The most receipts bound the hash, and what reading it costs,
-- however many consumers a room has; past it an ack is counted, not named (a consumer that acks
-- again after a reconnect is then counted again). The bound is the message's, not each node's:
-- under a higher one a consumer already counted in m would be recorded too, and listed twice.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local field = 'c:' .. ARGV[1]
redis.call('HSETNX', KEYS[1], 'b', ARGV[3])
if (tonumber(redis.call('HGET', KEYS[1], 'n')) or 0) >= tonumber(redis.call('HGET', KEYS[1], 'b')) then
  if redis.call('HEXISTS', KEYS[1], field) == 1 then return 0 end
  redis.call('HINCRBY', KEYS[1], 'm', 1)
  return -1
end
if redis.call('HSETNX', KEYS[1], field, ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'n', 1)
return 1
