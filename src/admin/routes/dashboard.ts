/**
 * The operator dashboard: its page (GET /) and files, and the operator-token
 * endpoints it polls besides /stats and the /v1 API.
 *
 *   GET /                               the page (asks for the operator token, keeps it in sessionStorage)
 *   GET /dashboard/<file>               its script, charts and style
 *   GET /dashboard/series?since=<ms>    {intervalMs, points: [{t, published, delivered, online, p50, p99}]}
 *   GET /dashboard/users/:userId        {userId, consumers: [{consumerId, platform, nodeId, isAlive}]}
 *   GET /dashboard/rooms/:room          {room, length, lastSeq, lastPublishedAt, members: {count, consumers, nodes}}
 *
 * The page is strict about what it runs: scripts and styles from here only,
 * never framed (Content-Security-Policy).
 */
import { Router } from '@koa/router'
import type { Context, Middleware } from 'koa'
import { platformOf, type Tokens } from '../../auth/token.js'
import { isBoundedString } from '../../broker/api.js'
import type { BrokerCore } from '../../broker/core.js'
import { askRoomMembers } from '../../broker/room-members.js'
import { SnapperError } from '../../errors.js'
import { verifyOperator } from '../auth.js'
import { loadDashboard } from '../dashboard/assets.js'
import type { LiveSeries } from '../live-series.js'
import { requireStore } from './publish.js'

const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'none'"

/** Longest the room view waits for the nodes to say who is in a room, in ms. */
const MEMBERS_TIMEOUT_MS = 1000

export function dashboardRoutes(deps: {
  core: BrokerCore
  tokens: Tokens
  series: LiveSeries
  maxRoomBytes: number
  nodeTtlMs: number
  /** Bounds the wait for Redis (redis-deadline.ts). */
  deadline: Middleware
}): Router {
  const { core, tokens, series, maxRoomBytes, nodeTtlMs, deadline } = deps
  const assets = loadDashboard()
  const nameParam = (value: unknown): string => {
    if (!isBoundedString(value, maxRoomBytes)) throw new SnapperError('INVALID_PARAMS')
    return value
  }
  const serve = (ctx: Context, file: string): void => {
    const asset = assets.get(file)!
    ctx.type = asset.type
    ctx.set('Cache-Control', 'no-cache')
    ctx.set('Content-Security-Policy', CSP)
    ctx.body = asset.body
  }
  /** Reads Redis for an operator: STORE_UNAVAILABLE (503) when it fails. */
  const read = async <T>(work: () => Promise<T>): Promise<T> => {
    requireStore(core)
    return work().catch((err: unknown) => {
      throw new SnapperError('STORE_UNAVAILABLE', undefined, { cause: err })
    })
  }

  const router = new Router()
  router.get('/', ctx => serve(ctx, 'index.html'))
  router.get('/dashboard/:file', (ctx, next) => {
    const file = ctx.params.file ?? ''
    return file !== 'index.html' && assets.has(file) ? serve(ctx, file) : next()
  })

  const operator = (ctx: Context, next: () => Promise<unknown>): Promise<unknown> => {
    verifyOperator(tokens, ctx)
    ctx.set('Cache-Control', 'no-store')
    return next()
  }
  router.get('/dashboard/series', operator, ctx => {
    const since = Number(ctx.query.since ?? 0)
    ctx.body = { intervalMs: series.intervalMs, points: series.since(Number.isFinite(since) ? since : 0) }
  })
  router.get('/dashboard/users/:userId', operator, deadline, async ctx => {
    const userId = nameParam(ctx.params.userId)
    const consumers = await read(() => core.presence.list(userId))
    ctx.body = {
      userId,
      consumers: consumers.map(({ consumerId, nodeId, isAlive }) => ({
        consumerId,
        platform: platformOf(consumerId),
        nodeId,
        isAlive,
      })),
    }
  })
  router.get('/dashboard/rooms/:room', operator, deadline, async ctx => {
    const room = nameParam(ctx.params.room)
    const [length, head, members] = await read(async () => {
      const liveNodes = (await core.stats.nodeReports(nodeTtlMs)).filter(report => report.isAlive).length
      return Promise.all([
        core.log.length(room),
        core.log.head(room),
        askRoomMembers(core.redis.commands, core.redis.pubsub, core.keys, room, {
          liveNodes,
          timeoutMs: MEMBERS_TIMEOUT_MS,
        }),
      ])
    })
    ctx.body = { room, length, lastSeq: head.seq, lastPublishedAt: head.ms === 0 ? null : head.ms, members }
  })
  return router
}
