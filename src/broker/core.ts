import { BoundedLog } from '../bounded-log.js'
import type { Config } from '../config/defaults.js'
import type { Logger } from '../log.js'
import type { RedisClients } from '../redis/connect.js'
import { Keys } from '../redis/keys.js'
import type { ProducerApi } from './api.js'
import { escalationWindowMs } from './escalation.js'
import { GroupCommit } from './group-commit.js'
import { Membership } from './membership.js'
import { Presence } from './presence.js'
import { createProducerApi } from './producer-api.js'
import { PublishBacklog } from './publish-backlog.js'
import { ReplicaShortfalls } from './replica-shortfalls.js'
import { RoomLog } from './room-log.js'
import { Stats } from './stats.js'
import { Tracking } from './tracking.js'

export type CoreConfig = Pick<
  Config,
  | 'redisPrefix'
  | 'redisReplicaAcks'
  | 'roomLogMaxLen'
  | 'roomLogMaxBytes'
  | 'logReadMaxBytes'
  | 'logReadMaxRoomsPerCall'
  | 'publishMaxPendingBytes'
  | 'messageTtlSec'
  | 'consumerTtlSec'
  | 'maxRoomsPerConsumer'
  | 'escalationWebhookUrl'
  | 'escalationRetrySec'
  | 'escalationPollMs'
  | 'escalationTimeoutMs'
  | 'trackMaxReceipts'
  | 'trackReceiptRetrySec'
  | 'deadNodeRetentionSec'
  | 'logMaxFailuresPerSec'
>

/** Longest a publish, join or leave waits for its replicas to confirm (redisReplicaAcks > 0), in ms. */
export const REPLICA_ACK_TIMEOUT_MS = 1000

/** The Redis data model, shared by every part of a node. */
export interface BrokerCore {
  readonly redis: RedisClients
  readonly keys: Keys
  readonly log: RoomLog
  readonly membership: Membership
  readonly presence: Presence
  /** The /stats figures: this process's counts, and every node's in Redis. */
  readonly stats: Stats
  readonly tracking: Tracking
  readonly producerApi: ProducerApi
}

export function createBrokerCore(config: CoreConfig, redis: RedisClients, logger: Logger): BrokerCore {
  const keys = new Keys(config.redisPrefix)
  const { commands, pubsub } = redis
  const acks = config.redisReplicaAcks
  // Publishes, joins and leaves wait for the same replicas, through one group commit on the same writer.
  const groupCommit =
    acks > 0
      ? new GroupCommit(
          {
            acks,
            timeoutMs: REPLICA_ACK_TIMEOUT_MS,
            writer: redis.replicatedWriter(),
            shortfalls: new ReplicaShortfalls(logger),
          },
          logger,
        )
      : undefined
  const log = new RoomLog(commands, keys, {
    maxLen: config.roomLogMaxLen,
    maxBytes: config.roomLogMaxBytes,
    readMaxBytes: config.logReadMaxBytes,
    readMaxRoomsPerCall: config.logReadMaxRoomsPerCall,
    ttlSec: config.messageTtlSec,
    publishCommand: pubsub.publishCommand,
    resendsInOrder: redis.resendsInOrder,
    isPassing: err => redis.isPassing(err),
    isCluster: redis.isCluster,
    ...(groupCommit && { groupCommit }),
  })
  const membership = new Membership(commands, pubsub, keys, log, {
    ttlSec: config.consumerTtlSec,
    maxRooms: config.maxRoomsPerConsumer,
    ...(groupCommit && { groupCommit }),
  })
  const presence = new Presence(commands, keys)
  const stats = new Stats(commands, keys, config.deadNodeRetentionSec * 1000)
  const tracking = new Tracking(commands, keys, log, {
    ttlSec: config.messageTtlSec,
    canEscalate: config.escalationWebhookUrl !== '',
    escalationWindowMs: escalationWindowMs(config),
    maxReceipts: config.trackMaxReceipts,
    receiptRetryMs: config.trackReceiptRetrySec * 1000,
    isPassing: err => redis.isPassing(err),
  })
  const backlog = new PublishBacklog(config.publishMaxPendingBytes)
  const failures = new BoundedLog(logger, config.logMaxFailuresPerSec)
  const producerApi = createProducerApi({
    backlog,
    log,
    membership,
    presence,
    stats,
    tracking,
    logger,
    failures,
  })
  return { redis, keys, log, membership, presence, stats, tracking, producerApi }
}
