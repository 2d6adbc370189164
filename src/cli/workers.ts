import cluster, { type Worker } from 'node:cluster'
import { Tokens } from '../auth/token.js'
import type { Config } from '../config/defaults.js'
import { ConfigError } from '../config/env.js'
import { createLogger, type Logger } from '../log.js'
import { clusterScraper, Registry, registerProcessMetrics, workerRegistry } from '../metrics.js'
import type { RedisClients } from '../redis/connect.js'
import { startAdmin, type RunningAdmin } from './admin.js'
import { connectRedis, startNode } from './node.js'
import { onShutdown } from './start.js'

/** Messages a worker sends to the primary. */
type WorkerMessage = { readonly type: 'ready'; readonly gateway: number; readonly producer: number }

/** A worker that dies sooner than this after its start counts as crash-looping, in ms. */
const STABLE_AFTER_MS = 5000
const MAX_RESTART_DELAY_MS = 30_000

/** What the primary knows of one worker slot; /stats shows it as `workers`. */
interface Slot {
  worker: Worker | undefined
  startedAt: number
  failures: number
  /** The current worker said `ready` (its listeners are up); false again once it exits. */
  isReady: boolean
  restarts: number
}

/**
 * The primary of `snapper start --workers N`: forks N worker nodes (worker i
 * serves consumers on gatewayPort + i; all share the producer port), restarts
 * any that dies (saying why, backing off if it keeps dying), restarts them one
 * by one on SIGHUP (rolling restart: the new one is up before the old drains),
 * and drains them all on SIGTERM/SIGINT. Unless adminPort is 0, the primary
 * also runs the admin app, over a Redis connection of its own: the HTTP
 * publish API works from here, /metrics sums every worker's metrics, and
 * /readyz is ready once every worker reported ready and Redis answers.
 */
export async function runWorkers(config: Config, log: Logger): Promise<void> {
  checkPorts(config)
  const slots: Slot[] = []
  let shuttingDown = false

  const fork = (index: number): Promise<Worker> => {
    const worker = cluster.fork({
      SNAPPER_WORKER_INDEX: String(index),
      SNAPPER_WORKER_CONFIG: JSON.stringify(config),
    })
    const slot = (slots[index] ??= {
      worker: undefined,
      startedAt: 0,
      failures: 0,
      isReady: false,
      restarts: -1,
    })
    slot.worker = worker
    slot.startedAt = Date.now()
    slot.isReady = false
    slot.restarts++
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker || shuttingDown) return
      slot.worker = undefined
      slot.isReady = false
      slot.failures = Date.now() - slot.startedAt < STABLE_AFTER_MS ? slot.failures + 1 : 0
      const delayMs = Math.min(MAX_RESTART_DELAY_MS, slot.failures === 0 ? 0 : 500 * 2 ** slot.failures)
      log.error(
        { worker: index, pid: worker.process.pid, code, signal, restartInMs: delayMs },
        'worker died; restarting it',
      )
      setTimeout(
        () => void fork(index).catch(err => log.error({ err, worker: index }, 'worker restart failed')),
        delayMs,
      )
    })
    return new Promise((resolve, reject) => {
      worker.on('message', (message: WorkerMessage) => {
        if (message.type !== 'ready') return
        if (slot.worker === worker) slot.isReady = true
        log.info({ worker: index, pid: worker.process.pid, ...message }, 'worker ready')
        resolve(worker)
      })
      worker.once('exit', code =>
        reject(new Error(`worker ${index} exited with code ${code} before it was ready`)),
      )
    })
  }

  const stopWorker = (worker: Worker): Promise<void> =>
    new Promise(resolve => {
      if (worker.isDead()) return resolve()
      worker.once('exit', () => resolve())
      worker.process.kill('SIGTERM')
    })

  // Fails fast, before any worker is forked, if Redis cannot be reached.
  const redis = await connectRedis(config, log)
  const admin =
    config.adminPort === 0
      ? undefined
      : await startPrimaryAdmin(config, log, redis, slots, () => shuttingDown)
  if (!admin) await redis.quit()
  try {
    await Promise.all(Array.from({ length: config.workers }, (_, i) => fork(i)))
  } catch (err) {
    // A failed start: no restarts, nothing left running.
    shuttingDown = true
    await Promise.all(slots.flatMap(slot => (slot.worker ? [stopWorker(slot.worker)] : [])))
    await admin?.close()
    throw err
  }
  log.info(
    { workers: config.workers, producerPort: config.producerPort, gatewayPorts: `${config.gatewayPort}+i` },
    'broker started',
  )

  let rolling = false
  process.on('SIGHUP', () => {
    if (rolling || shuttingDown) return
    rolling = true
    void (async () => {
      log.info('rolling restart')
      for (let i = 0; i < slots.length; i++) {
        const old = slots[i]?.worker
        if (old) {
          slots[i]!.worker = undefined // its exit is expected, not a crash
          slots[i]!.isReady = false
        }
        await fork(i)
        if (old) await stopWorker(old)
      }
      log.info('rolling restart done')
    })()
      .catch(err => log.error({ err }, 'rolling restart failed'))
      .finally(() => {
        rolling = false
      })
  })

  onShutdown(log, config.drainTimeoutMs + 2000, async () => {
    shuttingDown = true
    await Promise.all(slots.flatMap(slot => (slot.worker ? [stopWorker(slot.worker)] : [])))
    await admin?.close()
  })
}

/** Worker i's gateway takes gatewayPort + i: no other listener may sit in that range. */
export function checkPorts(
  config: Pick<Config, 'gatewayPort' | 'producerPort' | 'adminPort' | 'workers'>,
): void {
  const last = config.gatewayPort + config.workers - 1
  for (const key of ['producerPort', 'adminPort'] as const) {
    const port = config[key]
    if (port !== 0 && port >= config.gatewayPort && port <= last)
      throw new ConfigError(
        `"${key}" ${port} is one of the gateway ports ${config.gatewayPort}..${last} (gatewayPort + worker index): choose a port outside it`,
      )
  }
}

/**
 * The primary's admin app: its own Redis connection and broker core (the
 * HTTP publish API), metrics aggregated over the workers (plus the primary's
 * own `snapper_http_*` and `snapper_primary_*`), readiness from the slots.
 */
async function startPrimaryAdmin(
  config: Config,
  log: Logger,
  redis: RedisClients,
  slots: readonly Slot[],
  isShuttingDown: () => boolean,
): Promise<{ close(): Promise<void> }> {
  const registry = new Registry()
  // Prefixed: the workers' process metrics carry the plain names, and the two texts are concatenated.
  registerProcessMetrics(registry, 'snapper_primary_')
  let admin: RunningAdmin
  try {
    admin = await startAdmin({
      config,
      logger: log,
      redis,
      tokens: new Tokens(config.tokenSecrets, config.tokenAlgorithm),
      port: config.adminPort,
      registry,
      readiness: () => {
        if (isShuttingDown()) return ['draining']
        const reasons: string[] = []
        for (let i = 0; i < config.workers; i++) if (!slots[i]?.isReady) reasons.push(`worker ${i} not ready`)
        return reasons
      },
      metrics: clusterScraper(registry),
      details: () => ({
        workers: Array.from({ length: config.workers }, (_, index) => {
          const slot = slots[index]
          return {
            index,
            pid: slot?.worker?.process.pid ?? null,
            gatewayPort: config.gatewayPort + index,
            isReady: slot?.isReady ?? false,
            restarts: Math.max(0, slot?.restarts ?? 0),
          }
        }),
      }),
      gatewayPort: config.gatewayPort,
    })
  } catch (err) {
    await redis.quit()
    throw err
  }
  return {
    async close() {
      await admin.close()
      await redis.quit()
    },
  }
}

/** Entry of a worker process: the primary's config, a node on gatewayPort + index. */
export async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env.SNAPPER_WORKER_CONFIG ?? '{}') as Config
  const index = Number(process.env.SNAPPER_WORKER_INDEX ?? 0)
  const log = createLogger(config.logLevel, { worker: index })
  const running = await startNode(
    config,
    log,
    { gateway: config.gatewayPort + index, producer: config.producerPort },
    { registry: workerRegistry(), processMetrics: true },
  )
  // Ctrl-C sends SIGINT to the whole process group, and the primary passes it on as SIGTERM:
  // a worker that took both would count the second as "exit now" and skip its drain.
  process.on('SIGINT', () => {})
  onShutdown(log, config.drainTimeoutMs, () => running.stop(), ['SIGTERM'])
  const ready: WorkerMessage = { type: 'ready', ...running.ports }
  process.send?.(ready)
}
