/**
 * `GET /stats` on the admin port: the gateway's /stats body (the original's
 * fields), plus what this process knows of every node: the last report of
 * each node in Redis, and, in a cluster's primary, its workers.
 */
import { Router } from '@koa/router'
import type { Middleware } from 'koa'
import type { Tokens } from '../../auth/token.js'
import type { BrokerCore } from '../../broker/core.js'
import type { BrokerNode } from '../../broker/node.js'
import type { NodeReport } from '../../broker/stats.js'
import { SnapperError } from '../../errors.js'
import { statsBody } from '../../gateway/stats.js'
import { verifyOperator } from '../auth.js'
import { requireStore } from './publish.js'

export function statsRoutes(deps: {
  core: BrokerCore
  tokens: Tokens
  nodeTtlMs: number
  node?: BrokerNode
  details?: () => Record<string, unknown>
  /** Bounds the wait for Redis (redis-deadline.ts). */
  deadline: Middleware
}): Router {
  const { core, tokens, nodeTtlMs, node, details, deadline } = deps
  const router = new Router()
  router.get('/stats', deadline, async ctx => {
    verifyOperator(tokens, ctx)
    requireStore(core)
    const read = async (): Promise<[unknown, NodeReport[]]> => {
      // What this process's HTTP API published counts at once, like the node's own figures.
      await core.stats.flush()
      return Promise.all([statsBody(core, node, nodeTtlMs), core.stats.nodeReports(nodeTtlMs)])
    }
    const [body, nodes] = await read().catch((err: unknown) => {
      throw new SnapperError('STORE_UNAVAILABLE', undefined, { cause: err })
    })
    ctx.set('Cache-Control', 'no-store')
    ctx.body = { ...(body as object), nodes, ...details?.() }
  })
  return router
}
