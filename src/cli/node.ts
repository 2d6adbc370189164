import { closeSync, openSync } from 'node:fs'
import { hostname } from 'node:os'
import { tokensOf, type Tokens } from '../auth/token.js'
import { createBrokerCore, type BrokerCore } from '../broker/core.js'
import { Escalator, escalatorOptions } from '../broker/escalation.js'
import { BrokerNode } from '../broker/node.js'
import type { Config } from '../config/defaults.js'
import { redactRedisUrl } from '../config/redis-url.js'
import { createGateway, type Gateway } from '../gateway/app.js'
import type { Logger } from '../log.js'
import { Registry, registerProcessMetrics, scrape } from '../metrics/index.js'
import { registerNodeMetrics } from '../metrics/node.js'
import { OpenFilesGuard, reserveFilesWithin } from '../open-files-guard.js'
import { openFilesLimit } from '../open-files.js'
import { PACKAGE } from '../package.js'
import { createProducerListener, type ProducerListener } from '../producer/listener.js'
import { createRedisClients, type RedisClients } from '../redis/connect.js'
import { redisHealth } from '../redis/ping.js'
import { checkRedisSettings } from '../redis/settings.js'
import { RedisWatchdog } from '../redis/watchdog.js'
import { startAdmin, type RunningAdmin } from './admin.js'

/** How long start-up waits for Redis before it gives up with a clear message, in ms. */
const REDIS_START_TIMEOUT_MS = 5000

/**
 * Where a node listens. 0 picks a free port (tests). `admin` absent: no admin
 * app in this process (a cluster's workers; `adminPort: 0` in the config).
 */
export interface NodePorts {
  readonly gateway: number
  readonly producer: number
  readonly admin?: number
}

export interface RunningNode {
  readonly core: BrokerCore
  readonly node: BrokerNode
  /** Sends the escalations that fell due (with escalationWebhookUrl set). */
  readonly escalator: Escalator | undefined
  readonly gateway: Gateway
  readonly producer: ProducerListener
  readonly tokens: Tokens
  /** Whether Redis answers this node's PINGs (snapper_redis_up). */
  readonly redisWatchdog: RedisWatchdog
  /** This node's metrics (and the admin app's, when it runs here). */
  readonly registry: Registry
  /** The ports actually bound (tests pass 0); `admin` only when the admin app runs here. */
  readonly ports: { readonly gateway: number; readonly producer: number; readonly admin?: number }
  /** What the admin app holds per connection and address, when it runs here (a leak check's reading). */
  readonly adminFootprint: (() => Record<string, number>) | undefined
  /**
   * Graceful drain: /readyz turns 503, stop accepting, store every producer
   * message already received, close consumers (spread out) with their cursors
   * persisted, answer the admin requests in flight, then close Redis.
   * Resolves when done; rejects if that took longer than drainTimeoutMs
   * (Redis down: the connections are dropped, and what still waited for them
   * fails at once: nothing of the node is left running).
   */
  stop(): Promise<void>
}

/** The ports of the config: `adminPort` 0 turns the admin app off. */
export function configPorts(config: Pick<Config, 'gatewayPort' | 'producerPort' | 'adminPort'>): NodePorts {
  return {
    gateway: config.gatewayPort,
    producer: config.producerPort,
    ...(config.adminPort !== 0 && { admin: config.adminPort }),
  }
}

/**
 * Starts one broker node in this process: Redis (fails fast if unreachable),
 * the node, its consumer gateway, the producer listener, and (if `ports.admin`
 * is set) the admin app. Metrics go on `options.registry` (a worker passes
 * prom-client's global one, which the primary aggregates), else on a new one;
 * `options.ownsProcess` adds prom-client's process metrics (event-loop
 * lag, heap, GC) to it and guards the process's open files
 * (src/open-files-guard.ts): once per process, so the CLI sets it, tests that
 * start many nodes in one process do not. The gateway port must be free,
 * unless `options.takesOverGateway` (a rolling restart's worker, sharing it
 * with the one it replaces).
 */
export async function startNode(
  config: Config,
  logger: Logger,
  ports: NodePorts = configPorts(config),
  options: { registry?: Registry; ownsProcess?: boolean; takesOverGateway?: boolean } = {},
): Promise<RunningNode> {
  const redis = await connectRedis(config, logger)
  void checkRedisSettings(redis, logger) // warns, never throws: the node starts either way
  const core = createBrokerCore(config, redis, logger)
  const tokens = tokensOf(config)
  const name = ports.gateway === 0 ? undefined : `${hostname()}:${ports.gateway}`
  const node = new BrokerNode(core, config, logger, name)
  await node.start()
  const escalator = startEscalator(config, core, logger)
  const redisWatchdog = watchRedis(redis, config, logger)
  const gateway = createGateway({ config, core, node, tokens, logger })
  // Producer and admin connections alike: a file for each, while the guard (set once listening) has them.
  const admitsConnection = (): boolean => filesGuard?.admitsConnection() ?? true
  const producer = createProducerListener({ config, tokens, api: core.producerApi, logger, admitsConnection })
  const registry = options.registry ?? new Registry()
  if (options.ownsProcess) registerProcessMetrics(registry)
  registerNodeMetrics(registry, {
    core,
    node,
    sessions: gateway.engine.sessions,
    gateway: gateway.counters,
    engine: gateway.engine,
    producer,
    escalations: escalator?.counters,
    redisWatchdog,
    openFiles: () => filesGuard?.counters,
  })
  let isDraining = false
  let filesGuard: OpenFilesGuard | undefined
  let bound: { gateway: number; producer: number }
  let admin: RunningAdmin | undefined
  try {
    bound = {
      gateway: await gateway.listen(ports.gateway, config.host, { takesOver: options.takesOverGateway }),
      producer: await producer.listen(ports.producer, config.host),
    }
    if (ports.admin !== undefined)
      admin = await startAdmin({
        config,
        logger,
        redis,
        tokens,
        port: ports.admin,
        registry,
        // The listeners are up by now: what remains is the drain.
        readiness: () => [
          ...(isDraining ? ['draining'] : []),
          ...(filesGuard?.isExhausted ? ['open files exhausted'] : []),
        ],
        admitsConnection,
        metrics: () => scrape(registry),
        node,
        gatewayPort: bound.gateway,
      })
  } catch (err) {
    // A port taken: leave nothing behind (no stale node entry in the stats, no open Redis).
    gateway.close()
    redisWatchdog.stop()
    await Promise.allSettled([producer.close(), node.stop(0), escalator?.stop()])
    await redis.quit()
    throw err
  }
  const running = { ...bound, ...(admin && { admin: admin.port }) }
  if (options.ownsProcess) filesGuard = guardOpenFiles(config, gateway, logger)
  logger.info({ nodeId: node.id, version: PACKAGE.version, ...running }, 'node started')

  let stopping: Promise<void> | undefined
  const drain = async (): Promise<void> => {
    await Promise.all([producer.close(), node.stop(config.drainSpreadMs), escalator?.stop()])
    await admin?.close()
    gateway.close()
    redisWatchdog.stop() // Redis closes next: its PINGs would fail
    await redis.quit()
  }
  const stop = async (): Promise<void> => {
    const startedAtMs = Date.now()
    isDraining = true
    filesGuard?.stop()
    gateway.stopListening()
    // Through a Redis outage the drain's writes (cursors, releases, appends) wait for Redis:
    // past its budget the drain gives up on them rather than wait for ever.
    if (!(await settlesWithin(drain(), config.drainTimeoutMs))) {
      const redisStatus = redis.commands.status
      gateway.close()
      void admin?.close()
      redisWatchdog.stop()
      redis.disconnect()
      // What producers published that is not stored yet is lost with the process: say how much.
      const unstoredBytes = core.producerApi.backlog.bytes
      logger.error({ nodeId: node.id, redisStatus, unstoredBytes }, 'node drain timed out')
      throw new Error(`drain not done within ${config.drainTimeoutMs} ms (Redis connection ${redisStatus})`)
    }
    logger.info({ nodeId: node.id, drainMs: Date.now() - startedAtMs }, 'node stopped')
  }
  return {
    core,
    node,
    escalator,
    gateway,
    producer,
    tokens,
    redisWatchdog,
    registry,
    ports: running,
    adminFootprint: admin?.footprint,
    stop: () => (stopping ??= stop()),
  }
}

/**
 * The open-files guard of a node that owns its process, with a reserve of at most a
 * quarter of the process's limit; none where the limit is unknown (not Linux) or unlimited.
 */
function guardOpenFiles(
  config: Pick<Config, 'openFilesReserve'>,
  gateway: Gateway,
  logger: Logger,
): OpenFilesGuard | undefined {
  let limit: number
  try {
    limit = openFilesLimit()
  } catch {
    return undefined // not Linux: no limit to read
  }
  if (!Number.isFinite(limit)) return undefined
  try {
    closeSync(openSync('/dev/null', 'r')) // what the guard holds and tries
  } catch (err) {
    logger.warn({ err }, 'no open-files guard: /dev/null cannot be opened')
    return undefined
  }
  const reserveFiles = reserveFilesWithin(config.openFilesReserve, limit)
  if (reserveFiles < config.openFilesReserve)
    logger.warn(
      { openFilesReserve: config.openFilesReserve, openFilesLimit: limit, reserveFiles },
      'openFilesReserve is more than a quarter of the open-files limit: lowered to that',
    )
  return new OpenFilesGuard(reserveFiles, gateway, logger.child({ module: 'open-files' }))
}

/** Whether `work` settles within `ms`; its rejection is passed on. */
async function settlesWithin(work: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>(resolve => (timer = setTimeout(() => resolve(false), ms)))
  try {
    return await Promise.race([work.then(() => true as const), late])
  } finally {
    clearTimeout(timer)
  }
}

/** Every node with a webhook configured sends escalations; Redis leases each to one of them. */
function startEscalator(config: Config, core: BrokerCore, logger: Logger): Escalator | undefined {
  if (config.escalationWebhookUrl === '') return undefined
  const log = logger.child({ module: 'escalation' })
  const escalator = new Escalator(core.redis, core.keys, escalatorOptions(config), log)
  escalator.start()
  return escalator
}

/** Connects to Redis, or fails within REDIS_START_TIMEOUT_MS saying where it looked. */
export async function connectRedis(config: Pick<Config, 'redis'>, logger: Logger): Promise<RedisClients> {
  const redis = createRedisClients(config.redis, logger)
  try {
    await redis.connect(REDIS_START_TIMEOUT_MS)
  } catch (err) {
    await redis.quit()
    throw new Error(`cannot reach Redis at ${describeRedis(config)}: ${(err as Error).message}`, {
      cause: err,
    })
  }
  return redis
}

/**
 * Starts PINGing Redis every redisPingIntervalMs (redis/watchdog.ts); while it
 * does not answer, `redis` counts as not ready, so that what needs Redis is
 * refused at once instead of waiting for it (on a cluster, what needs the
 * masters that do not answer: RedisClients.isReadyFor). A command that meets
 * CLUSTERDOWN has it PING at once.
 */
export function watchRedis(
  redis: RedisClients,
  config: Pick<Config, 'redis' | 'redisPingIntervalMs'>,
  log: Logger,
): RedisWatchdog {
  // The masters of a cluster that did not answer the last PING: only their keys are refused.
  let mastersDown: readonly string[] = []
  const watchdog = new RedisWatchdog({
    probe: async () => {
      const health = await redisHealth(redis)
      mastersDown = health.mastersDown
      return health
    },
    log,
    intervalMs: config.redisPingIntervalMs,
    server: describeRedis(config),
    onPing: isUp => redis.setAnswering(isUp, mastersDown),
  })
  // The cluster refused a command as down: refuse what needs it from now on, not from the next PING.
  redis.onClusterDown(() => watchdog.checkNow())
  watchdog.start()
  return watchdog
}

/** Where Redis is, for an operator: the configured addresses, with any user and password as `***`. */
function describeRedis(config: Pick<Config, 'redis'>): string {
  const { redis } = config
  return redis.kind === 'standalone'
    ? redactRedisUrl(redis.url)
    : `cluster ${redis.nodes.map(redactRedisUrl).join(',')}`
}
