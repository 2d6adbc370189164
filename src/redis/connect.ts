import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis'
import type { RedisTarget } from '../config/defaults.js'
import type { Logger } from '../log.js'
import { defineScripts, type Commands } from './scripts.js'

/** Backoff between reconnects: 50 ms growing to 2 s, for ever (an outage must heal by itself). */
const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000)

const baseOptions: RedisOptions = {
  // Commands wait through an outage instead of failing: nothing accepted is dropped.
  maxRetriesPerRequest: null,
  enableOfflineQueue: true,
  retryStrategy,
  connectTimeout: 5000,
  lazyConnect: true,
}

/** Parses `host:port` or `redis://host:port` into a cluster node. */
function clusterNode(address: string): ClusterNode {
  const url = new URL(address.includes('://') ? address : `redis://${address}`)
  return { host: url.hostname, port: Number(url.port || 6379) }
}

export interface RedisClients {
  /** Commands and scripts; auto-pipelined. */
  readonly commands: Commands
  /** A connection in subscriber mode (on a Cluster: sharded subscribers, one per master). */
  readonly subscriber: Redis | Cluster
  /** On a cluster, announcements use SPUBLISH/SSUBSCRIBE so each reaches only its shard. */
  readonly sharded: boolean
  /** Resolves once both connections are up; rejects if Redis cannot be reached within timeoutMs. */
  connect(timeoutMs: number): Promise<void>
  quit(): Promise<void>
}

export function createRedisClients(target: RedisTarget, log: Logger): RedisClients {
  const sharded = target.kind === 'cluster'
  const make = (role: string): Redis | Cluster => {
    const client =
      target.kind === 'standalone'
        ? new Redis(target.url, { ...baseOptions, enableAutoPipelining: role === 'commands' })
        : new Cluster(target.nodes.map(clusterNode), {
            redisOptions: baseOptions,
            lazyConnect: true,
            enableOfflineQueue: true,
            enableAutoPipelining: role === 'commands',
            clusterRetryStrategy: retryStrategy,
            shardedSubscribers: role === 'subscriber',
            slotsRefreshInterval: 2000,
          })
    // Every client has an error listener: ioredis retries, the log says why.
    client.on('error', (err: Error) => log.warn({ err: err.message, role }, 'redis connection error'))
    return client
  }
  const commands = defineScripts(make('commands'))
  const subscriber = make('subscriber')

  return {
    commands,
    subscriber,
    sharded,
    async connect(timeoutMs) {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis not reachable within ${timeoutMs} ms`)), timeoutMs)
      })
      try {
        await Promise.race([Promise.all([commands.connect(), subscriber.connect()]), timeout])
      } finally {
        clearTimeout(timer)
      }
    },
    async quit() {
      await Promise.allSettled([commands.quit(), subscriber.quit()])
    },
  }
}
