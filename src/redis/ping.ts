/**
 * Whether Redis answers now: a PING with a short timeout of its own (the
 * clients have no commandTimeout: their commands wait through an outage). On
 * a cluster, every master the client knows: one shard down stalls every
 * producer connection that writes to it. /readyz and each node's watchdog ask.
 */
import type { Cluster, Redis } from 'ioredis'
import type { RedisClients } from './connect.js'

/** A PING slower than this counts as Redis being unavailable, in ms. */
export const REDIS_PING_TIMEOUT_MS = 1000

/** Why Redis cannot serve now, or undefined. Never queues a command while a connection is down. */
export async function redisProblem(
  redis: Pick<RedisClients, 'commands' | 'isCluster'>,
  timeoutMs = REDIS_PING_TIMEOUT_MS,
): Promise<string | undefined> {
  const { commands, isCluster } = redis
  if (commands.status !== 'ready') return `redis: connection ${commands.status}`
  if (!isCluster) return pingProblem(commands as Redis, 'redis', timeoutMs)
  // A cluster's PING goes to any one node: ask each master instead (a lost one stays listed until
  // its replica takes over, which the next slot map shows).
  const masters = (commands as Cluster).nodes('master')
  const problems = await Promise.all(
    masters.map(master =>
      pingProblem(master, `redis master ${master.options.host}:${master.options.port}`, timeoutMs),
    ),
  )
  return problems.find(problem => problem !== undefined)
}

async function pingProblem(server: Redis, name: string, timeoutMs: number): Promise<string | undefined> {
  // The offline queue would hold a PING until the server is back: ask only a ready connection, or one
  // not made yet (a cluster connects to a node on its first command; the PING makes it).
  if (server.status !== 'ready' && server.status !== 'wait') return `${name}: connection ${server.status}`
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>(resolve => {
    timer = setTimeout(() => resolve(`${name}: no PING answer within ${timeoutMs} ms`), timeoutMs)
  })
  try {
    return await Promise.race([
      server.ping().then(
        () => undefined,
        () => `${name}: PING failed`,
      ),
      timeout,
    ])
  } finally {
    clearTimeout(timer)
  }
}
