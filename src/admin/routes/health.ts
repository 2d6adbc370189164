/**
 * Probes. `/healthz` answers while the process runs (liveness: restart me if
 * not). `/readyz` answers 200 only while this process can serve: Redis
 * answers PING within REDIS_PING_TIMEOUT_MS, and the process's own readiness
 * (its listeners are up, every worker reported ready, it is not draining)
 * says so; otherwise 503 with the reasons, for the operator.
 */
import { Router } from '@koa/router'
import type { BrokerCore } from '../../broker/core.js'

/** A PING slower than this counts as Redis being unavailable, in ms. */
export const REDIS_PING_TIMEOUT_MS = 1000

/** Why this process is not ready to serve; empty when it is. Redis is checked separately. */
export type Readiness = () => readonly string[] | Promise<readonly string[]>

/** Why Redis cannot serve now, or undefined. Never queues a command while the connection is down. */
export async function redisProblem(
  core: BrokerCore,
  timeoutMs = REDIS_PING_TIMEOUT_MS,
): Promise<string | undefined> {
  const { commands } = core.redis
  // The offline queue would hold a PING until Redis is back: ask only a ready connection.
  if (commands.status !== 'ready') return `redis: connection ${commands.status}`
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>(resolve => {
    timer = setTimeout(() => resolve(`redis: no PING answer within ${timeoutMs} ms`), timeoutMs)
  })
  try {
    return await Promise.race([
      commands.ping().then(
        () => undefined,
        () => 'redis: PING failed',
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
