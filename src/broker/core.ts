import type { Config } from '../config/defaults.js'
import type { Logger } from '../log.js'
import type { RedisClients } from '../redis/connect.js'
import { Keys } from '../redis/keys.js'
import type { ProducerApi } from './api.js'
import { Membership } from './membership.js'
import { Presence } from './presence.js'
import { createProducerApi } from './producer-api.js'
import { RoomLog } from './room-log.js'
import { StatsCounters } from './stats.js'

export type CoreConfig = Pick<Config, 'redisPrefix' | 'roomLogMaxLen' | 'messageTtlSec' | 'consumerTtlSec'>

/** The Redis data model, shared by every part of a node. */
export interface BrokerCore {
  readonly redis: RedisClients
  readonly keys: Keys
  readonly log: RoomLog
  readonly membership: Membership
  readonly presence: Presence
  readonly stats: StatsCounters
  readonly producerApi: ProducerApi
}

export function createBrokerCore(config: CoreConfig, redis: RedisClients, logger: Logger): BrokerCore {
  const keys = new Keys(config.redisPrefix)
  const { commands, sharded } = redis
  const log = new RoomLog(commands, keys, {
    maxLen: config.roomLogMaxLen,
    ttlSec: config.messageTtlSec,
    sharded,
  })
  const membership = new Membership(commands, keys, log, { ttlSec: config.consumerTtlSec, sharded })
  const presence = new Presence(commands, keys, config.consumerTtlSec)
  const stats = new StatsCounters()
  const producerApi = createProducerApi({ log, membership, presence, stats, logger })
  return { redis, keys, log, membership, presence, stats, producerApi }
}
