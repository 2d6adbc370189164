/**
 * Probes. `/healthz` answers while the process runs (liveness: restart me if
 * not). `/readyz` answers 200 only while this process can serve: Redis
 * answers PING within REDIS_PING_TIMEOUT_MS (redis/ping.ts), and the
 * process's own readiness (its listeners are up, every worker reported
 * ready, it is not draining) says so; otherwise 503 with the reasons, for the
 * operator. Requests that come while a round of PINGs is out share its
 * answer. On a cluster, some masters that do not answer leave it 200
 * `degraded`, naming them: every node shares them, so a 503 would take every
 * node out of the load balancer, the consumers and rooms on the masters that
 * answer too (docs/RELIABILITY.md, "One stalled master"). None answering is 503.
 */
import { Router } from '@koa/router'
import type { BrokerCore } from '../../broker/core.js'
import { redisHealth } from '../../redis/ping.js'
import { oneAtATime } from '../one-at-a-time.js'

/** Why this process is not ready to serve; empty when it is. Redis is checked separately. */
export type Readiness = () => readonly string[] | Promise<readonly string[]>

export function healthRoutes(core: BrokerCore, readiness: Readiness): Router {
  const router = new Router()
  // One round of PINGs at a time, its answer shared by the requests that come meanwhile: a PING that
  // Redis does not answer stays queued on its connection until Redis does, one per request before
  // (an unauthenticated route: a flood while Redis hangs grew the heap ~1.9 KB a request).
  const askRedis = oneAtATime(() => redisHealth(core.redis))
  router.get('/healthz', ctx => {
    ctx.body = { status: 'ok' }
  })
  router.get('/readyz', async ctx => {
    const [redis, own] = await Promise.all([askRedis(), readiness()])
    const reasons = [...redis.problems, ...own]
    ctx.set('Cache-Control', 'no-store')
    if (reasons.length === 0) {
      ctx.body = { status: 'ok' }
      return
    }
    const isDegraded = own.length === 0 && core.redis.isCluster && redis.isAnyAnswering
    if (isDegraded) {
      ctx.body = { status: 'degraded', reasons }
      return
    }
    ctx.status = 503
    ctx.body = { status: 'unavailable', reasons }
  })
  return router
}
