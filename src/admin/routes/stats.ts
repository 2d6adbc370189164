/**
 * `GET /stats` on the admin port: the gateway's /stats body (the original's
 * fields), plus what this process knows of every node: the last report of
 * each node in Redis, and, in a cluster's primary, its workers.
 */
import { Router } from '@koa/router'
import type { Tokens } from '../../auth/token.js'
import type { BrokerCore } from '../../broker/core.js'
import type { BrokerNode } from '../../broker/node.js'
import { SnapperError } from '../../errors.js'
import { statsBody } from '../../gateway/stats.js'
import { verifyOperator } from '../auth.js'
import { requireStore } from './publish.js'

/** One node's last report in Redis (`stats:nodes`, written every statsFlushMs). */
export interface NodeReport {
  readonly name: string
  readonly online: number
  /** How long ago the node reported, in ms. */
  readonly reportedMsAgo: number
  /** Whether it reported within nodeTtlMs (only those count in `stats.online`). */
  readonly isAlive: boolean
}

/** Every node's last report, alive or not (a dead one stays until its entry is dropped). */
export async function readNodeReports(core: BrokerCore, nodeTtlMs: number): Promise<NodeReport[]> {
  const raw = await core.redis.commands.hgetall(core.keys.statsNodes)
  const now = Date.now()
  const reports: NodeReport[] = []
  for (const [name, value] of Object.entries(raw)) {
    const [online, at] = value.split(' ').map(Number) // "<online> <ms>", see broker/stats.ts reportNode
    if (online === undefined || at === undefined || !Number.isFinite(online) || !Number.isFinite(at)) continue
    reports.push({ name, online, reportedMsAgo: now - at, isAlive: now - at <= nodeTtlMs })
  }
  return reports.sort((a, b) => a.name.localeCompare(b.name))
}

export function statsRoutes(deps: {
  core: BrokerCore
  tokens: Tokens
  nodeTtlMs: number
  node?: BrokerNode
  details?: () => Record<string, unknown>
}): Router {
  const { core, tokens, nodeTtlMs, node, details } = deps
  const router = new Router()
  router.get('/stats', async ctx => {
    verifyOperator(tokens, ctx)
    requireStore(core)
    const read = async (): Promise<[unknown, NodeReport[]]> => {
      // What this process's HTTP API published counts at once, like the node's own figures.
      await core.stats.flush(core.redis.commands, core.keys)
      return Promise.all([statsBody(core, node, nodeTtlMs), readNodeReports(core, nodeTtlMs)])
    }
    const [body, nodes] = await read().catch((err: unknown) => {
      throw new SnapperError('STORE_UNAVAILABLE', undefined, { cause: err })
    })
    ctx.set('Cache-Control', 'no-store')
    ctx.body = { ...(body as object), nodes, ...details?.() }
  })
  return router
}
