/**
 * Probes. `/healthz` answers while the process runs (liveness: restart me if
 * not). `/readyz` answers 200 only while this process can serve: Redis
 * answers PING within REDIS_PING_TIMEOUT_MS (on a cluster, every master the
 * client knows: one shard down stalls every producer connection that writes
 * to it), and the process's own readiness (its listeners are up, every
 * worker reported ready, it is not draining) says so; otherwise 503 with the
 * reasons, for the operator.
 */
import { Router } from '@koa/router'
import type { Cluster, Redis } from 'ioredis'
import type { BrokerCore } from '../../broker/core.js'

/** A PING slower than this counts as Redis being unavailable, in ms. */
export const REDIS_PING_TIMEOUT_MS = 1000

/** Why this process is not ready to serve; empty when it is. Redis is checked separately. */
export type Readiness = () => readonly string[] | Promise<readonly string[]>

/** Why Redis cannot serve now, or undefined. Never queues a command while a connection is down. */
export async function redisProblem(
  core: BrokerCore,
  timeoutMs = REDIS_PING_TIMEOUT_MS,
): Promise<string | undefined> {
  const { commands, isCluster } = core.redis
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

export function healthRoutes(core: BrokerCore, readiness: Readiness): Router {
  const router = new Router()
  router.get('/healthz', ctx => {
    ctx.body = { status: 'ok' }
  })
  router.get('/readyz', async ctx => {
    const [redis, own] = await Promise.all([redisProblem(core), readiness()])
    const reasons = redis === undefined ? [...own] : [redis, ...own]
    ctx.set('Cache-Control', 'no-store')
    if (reasons.length === 0) {
      ctx.body = { status: 'ok' }
      return
    }
    ctx.status = 503
    ctx.body = { status: 'unavailable', reasons }
  })
  return router
}
