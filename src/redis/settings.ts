/**
 * A Redis setting Snapper needs, checked once as a node starts (README,
 * Deployment: Redis settings): `maxmemory-policy noeviction`. Every key
 * Snapper writes has a ttl, so any other policy, the `volatile-*` ones too,
 * may evict a room log or a consumer's record when Redis fills: messages
 * lost, consumers taken out of their rooms. A server that does not say
 * (CONFIG renamed or refused, as some managed services do) is taken on
 * trust, with an info line.
 */
import type { Cluster, Redis } from 'ioredis'
import type { Logger } from '../log.js'
import type { RedisClients } from './connect.js'

/** Logs a warning for each server (each master of a Cluster) whose maxmemory-policy may evict keys. Never throws. */
export async function checkRedisSettings(
  redis: Pick<RedisClients, 'commands' | 'isCluster'>,
  log: Logger,
): Promise<void> {
  const servers = redis.isCluster ? (redis.commands as Cluster).nodes('master') : [redis.commands as Redis]
  await Promise.all(servers.map(server => checkEviction(server, log)))
}

async function checkEviction(server: Redis, log: Logger): Promise<void> {
  const name = `${server.options.host ?? '127.0.0.1'}:${server.options.port ?? 6379}`
  try {
    const [, policy] = (await server.config('GET', 'maxmemory-policy')) as string[]
    if (policy !== undefined && policy !== 'noeviction')
      log.warn(
        { server: name, policy },
        'Redis maxmemory-policy may evict Snapper keys (room logs, consumer records): set it to noeviction',
      )
  } catch (err) {
    log.info({ server: name, err }, 'could not read maxmemory-policy: make sure it is noeviction')
  }
}
