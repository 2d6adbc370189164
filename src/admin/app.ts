/**
 * The admin app (Koa): probes, stats, metrics, the HTTP producer API, the
 * operator dashboard, and the demo. A factory: it takes its config slice and
 * collaborators and returns the Koa app; `cli/` listens.
 *
 *   request → access log (debug) → error boundary (the one translator) → routes
 *
 * It also serves the consumer SDK's browser bundle at /sdk/consumer.js.
 *
 * Bodies are read only by the routes that take one, after their token check,
 * always as JSON (whatever the Content-Type), at most adminMaxBodyBytes each
 * and adminMaxPendingBodyBytes in all at once (pending-bodies.ts).
 */
import { bodyParser } from '@koa/bodyparser'
import Koa, { type Middleware } from 'koa'
import type { Tokens } from '../auth/token.js'
import type { BrokerCore } from '../broker/core.js'
import type { BrokerNode } from '../broker/node.js'
import type { Config } from '../config/defaults.js'
import { SnapperError } from '../errors.js'
import type { Logger } from '../log.js'
import type { AdminCounters } from '../metrics/admin.js'
import type { MetricsText } from '../metrics/index.js'
import { BoundedLog } from '../bounded-log.js'
import { bodyError, errorBoundary } from './errors.js'
import type { LiveSeries } from './live-series.js'
import { limitPendingBodies, PendingBodies } from './pending-bodies.js'
import { redisDeadline } from './redis-deadline.js'
import { dashboardRoutes } from './routes/dashboard.js'
import { demoRoutes } from './routes/demo.js'
import { healthRoutes, type Readiness } from './routes/health.js'
import { metricsRoutes } from './routes/metrics.js'
import { publishRoutes } from './routes/publish.js'
import { sdkRoutes } from './routes/sdk.js'
import { statsRoutes } from './routes/stats.js'

export type { Readiness } from './routes/health.js'

export type AdminConfig = Pick<
  Config,
  | 'adminMaxBodyBytes'
  | 'adminMaxPendingBodyBytes'
  | 'logMaxRefusalsPerSec'
  | 'redisRequestTimeoutMs'
  | 'nodeTtlMs'
  | 'maxRoomBytes'
  | 'maxMessageBytes'
  | 'maxRoomsPerPublish'
  | 'demo'
>

export interface AdminDeps {
  readonly config: AdminConfig
  /**
   * The admin app's broker core: the HTTP API publishes through it, /stats
   * and /readyz read Redis with it. Its stats counters are the caller's to flush.
   */
  readonly core: BrokerCore
  readonly tokens: Tokens
  readonly logger: Logger
  /** Kept by the app (responses by status, errors by code), read by the metrics. */
  readonly counters: AdminCounters
  /** Why this process cannot serve now (listeners down, workers not ready, draining); empty when it can. */
  readonly readiness: Readiness
  /** This process's Prometheus text (a cluster's primary: every worker's, aggregated). */
  readonly metrics: () => Promise<MetricsText>
  /** The node of this process, if it runs one: /stats then includes its own figures, exact. */
  readonly node?: BrokerNode
  /** More of this process for /stats (a primary: `{workers: [...]}`). */
  readonly details?: () => Record<string, unknown>
  /** The dashboard's charts, sampled by the caller (who starts and stops it). */
  readonly series: LiveSeries
  /** Demo mode: the gateway port that the demo page's consumer connects to. */
  readonly gatewayPort?: number
}

/** Requests slower than this are logged at info, the rest at debug, in ms. */
const SLOW_REQUEST_MS = 1000

/** One line per request: method, path (never the query: it may hold a token), status, time. */
function accessLog(log: Logger, counters: AdminCounters): Middleware {
  return async (ctx, next) => {
    const startedAt = performance.now()
    try {
      await next()
    } finally {
      const ms = Math.round(performance.now() - startedAt)
      const status = String(ctx.status)
      counters.responses[status] = (counters.responses[status] ?? 0) + 1
      const fields = { method: ctx.method, path: ctx.path, status: ctx.status, ms }
      if (ms >= SLOW_REQUEST_MS) log.info(fields, 'slow admin request')
      else log.debug(fields, 'admin request')
    }
  }
}

export function createAdminApp(deps: AdminDeps): Koa {
  const { config, core, tokens, counters } = deps
  const log = deps.logger.child({ module: 'admin' })
  const app = new Koa()
  // Koa's own error printing is off: the boundary below answers and logs every error.
  app.silent = true

  const readBody = bodyParser({
    enableTypes: ['json'],
    detectJSON: () => true,
    jsonLimit: config.adminMaxBodyBytes,
    onError: (err, ctx) => {
      // What is left of the body stays unread (a gzip body inflates past the limit before its
      // end arrives): the connection cannot carry another request.
      ctx.set('Connection', 'close')
      throw bodyError(err)
    },
  }) as Middleware
  const parseBody = limitPendingBodies(readBody, {
    pending: new PendingBodies(config.adminMaxPendingBodyBytes, counters),
    maxBodyBytes: config.adminMaxBodyBytes,
    counters,
    refusals: new BoundedLog(log, config.logMaxRefusalsPerSec),
    log,
  })

  app.use(accessLog(log, counters))
  app.use(errorBoundary(log, counters))
  app.use(async (ctx, next) => {
    ctx.set('X-Content-Type-Options', 'nosniff')
    ctx.set('Referrer-Policy', 'no-referrer')
    await next()
  })
  // @koa/router uses a parameter whose %-escape does not decode as it is written: a room named
  // "a%E0" by mistake would be another room than the one meant. Refused here, for every path.
  app.use((ctx, next) => {
    if (!isDecodable(ctx.path))
      throw new SnapperError('INVALID_PARAMS', undefined, { reason: 'the path has a malformed %-escape' })
    return next()
  })

  // Only the routes that wait for Redis: /readyz bounds its PING itself, /metrics its workers'.
  const deadline = redisDeadline(config.redisRequestTimeoutMs)
  const routers = [
    healthRoutes(core, deps.readiness),
    metricsRoutes(deps.metrics),
    statsRoutes({
      core,
      tokens,
      nodeTtlMs: config.nodeTtlMs,
      node: deps.node,
      details: deps.details,
      deadline,
    }),
    publishRoutes({ core, tokens, limits: config, parseBody, deadline }),
    sdkRoutes(log),
    dashboardRoutes({
      core,
      tokens,
      series: deps.series,
      maxRoomBytes: config.maxRoomBytes,
      nodeTtlMs: config.nodeTtlMs,
      deadline,
    }),
  ]
  if (config.demo) {
    if (deps.gatewayPort === undefined) throw new Error('demo mode needs the gateway port')
    routers.push(
      demoRoutes({
        core,
        tokens,
        maxMessageBytes: config.maxMessageBytes,
        gatewayPort: deps.gatewayPort,
        parseBody,
        logger: log,
      }),
    )
    log.warn('demo mode: /demo/ signs consumer tokens for anyone; never run it in production')
  }
  for (const router of routers) app.use(router.routes() as Middleware)
  return app
}

/** Whether every %-escape of a raw URL path decodes (to UTF-8). */
function isDecodable(path: string): boolean {
  try {
    decodeURIComponent(path)
    return true
  } catch {
    return false
  }
}
