/**
 * Probes. `/healthz` answers while the process runs (liveness: restart me if
 * not). `/readyz` answers 200 only while this process can serve: Redis
 * answers PING within REDIS_PING_TIMEOUT_MS (redis/ping.ts; on a cluster,
 * every master the client knows: one shard down stalls every producer
 * connection that writes to it), and the process's own readiness (its
 * listeners are up, every worker reported ready, it is not draining) says
 * so; otherwise 503 with the reasons, for the operator.
 */
import { Router } from '@koa/router'
import type { BrokerCore } from '../../broker/core.js'
import { redisProblem } from '../../redis/ping.js'

/** Why this process is not ready to serve; empty when it is. Redis is checked separately. */
export type Readiness = () => readonly string[] | Promise<readonly string[]>

export function healthRoutes(core: BrokerCore, readiness: Readiness): Router {
  const router = new Router()
  router.get('/healthz', ctx => {
    ctx.body = { status: 'ok' }
  })
  router.get('/readyz', async ctx => {
    const [redis, own] = await Promise.all([redisProblem(core.redis), readiness()])
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
