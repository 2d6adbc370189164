import { createAdminApp, type Readiness } from '../admin/app.js'
import { LiveSeries } from '../admin/live-series.js'
import { oneAtATime } from '../admin/one-at-a-time.js'
import { createAdminServer } from '../admin/server.js'
import type { Tokens } from '../auth/token.js'
import { createBrokerCore, type BrokerCore } from '../broker/core.js'
import type { BrokerNode } from '../broker/node.js'
import type { Config } from '../config/defaults.js'
import type { Logger } from '../log.js'
import { createAdminCounters, registerAdminMetrics } from '../metrics/admin.js'
import type { MetricsText, Registry } from '../metrics/index.js'
import { PACKAGE } from '../package.js'
import type { RedisClients } from '../redis/connect.js'

/** The dashboard's charts: a point a second for the last 15 minutes. */
const SERIES_INTERVAL_MS = 1000
const SERIES_WINDOW_SEC = 15 * 60

export interface RunningAdmin {
  /** The port actually bound. */
  readonly port: number
  /** Stops accepting, lets requests in flight finish, writes the last stats. Redis stays open. */
  close(): Promise<void>
  /** What the admin app holds per connection and address (a leak check's reading). */
  footprint(): Record<string, number>
}

/**
 * Runs the admin app on `port` (0 picks a free one) over `redis`, with a broker
 * core of its own, so that its metrics (`snapper_http_*`) count only what came
 * over HTTP, in one process as in a cluster's primary. Its metrics go on `registry`.
 */
export async function startAdmin(options: {
  config: Config
  logger: Logger
  redis: RedisClients
  tokens: Tokens
  port: number
  registry: Registry
  readiness: Readiness
  metrics: () => Promise<MetricsText>
  node?: BrokerNode
  details?: () => Record<string, unknown>
  /** The gateway port the demo page connects to. */
  gatewayPort: number
  /** Whether the process has files to spare for a new connection (src/open-files-guard.ts). */
  admitsConnection?: () => boolean
}): Promise<RunningAdmin> {
  const { config, logger, redis, registry } = options
  const core: BrokerCore = createBrokerCore(config, redis, logger)
  const counters = createAdminCounters()
  registerAdminMetrics(registry, { core, counters })
  const series = new LiveSeries(() => core.stats.figures(config.nodeTtlMs), {
    intervalMs: SERIES_INTERVAL_MS,
    windowSec: SERIES_WINDOW_SEC,
    onError: err => logger.debug({ err }, 'dashboard sample failed'),
  })
  series.start()
  const app = createAdminApp({ ...options, core, counters, series })

  // Nobody else flushes this core's counters: a node flushes only its own. One flush at a time,
  // none while the stats keys' masters do not answer (all of Redis, on one): the counters wait in
  // memory, not in the client's offline queue (docs/RELIABILITY.md, "One stalled master").
  const flushStats = oneAtATime(() =>
    core.stats.flush().catch((err: unknown) => logger.warn({ err }, 'admin stats flush failed')),
  )
  const timer = setInterval(() => {
    const { keys } = core
    if (redis.isReadyFor(keys.stats, keys.statsRooms)) void flushStats()
  }, config.statsFlushMs)
  timer.unref()

  const server = createAdminServer(app, config, {
    counters,
    logger,
    admitsConnection: options.admitsConnection,
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, config.host, () => {
      server.off('error', reject)
      const address = server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : options.port)
    })
  })
  logger.info({ version: PACKAGE.version, port, demo: config.demo }, 'admin app started')

  let closing: Promise<void> | undefined
  const close = async (): Promise<void> => {
    clearInterval(timer)
    series.stop()
    const closed = new Promise<void>(resolve => server.close(() => resolve()))
    server.closeIdleConnections() // keep-alive scrapers would otherwise hold close() open
    await closed
    await flushStats()
  }
  const footprint = (): Record<string, number> => ({
    adminConnectionAddresses: server.connectionAddresses(),
    adminPendingBodyBytes: counters.pendingBodyBytes,
  })
  return { port, close: () => (closing ??= close()), footprint }
}
