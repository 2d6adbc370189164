import cluster, { type Worker } from 'node:cluster'
import { tokensOf } from '../auth/token.js'
import type { Config } from '../config/defaults.js'
import { ConfigError } from '../config/env.js'
import { createLogger, type Logger } from '../log.js'
import { clusterScraper, Registry, registerProcessMetrics, workerRegistry } from '../metrics.js'
import type { RedisClients } from '../redis/connect.js'
import { startAdmin, type RunningAdmin } from './admin.js'
import { connectRedis, startNode, type RunningNode } from './node.js'
import { onShutdown } from './start.js'

/** Messages a worker sends to the primary: its listeners are up, or it cannot start (and exits 1). */
type WorkerMessage =
  | { readonly type: 'ready'; readonly gateway: number; readonly producer: number }
  | { readonly type: 'failed'; readonly reason: string }

/** A worker that dies sooner than this after its start counts as crash-looping, in ms. */
const STABLE_AFTER_MS = 5000
const MAX_RESTART_DELAY_MS = 30_000
/** How much longer than a worker's own drain timeout the primary waits for it, in ms. */
const PRIMARY_DRAIN_MARGIN_MS = 2000

/**
 * What the primary knows of one worker slot; /stats shows it as `workers`.
 * A worker enters its slot once it is ready, so the slot always holds the
 * worker that serves (during a rolling restart, the old one until the new
 * one is up).
 */
interface Slot {
  worker: Worker | undefined
  /** When the current worker became ready (Date.now()). */
  startedAt: number
  failures: number
  /** A ready worker is in the slot; false while it is empty (a restart is pending). */
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
 *
 * A worker that fails before it is ready is never restarted by fork()
 * itself; its caller decides: at start-up the whole start fails (a port taken
 * stays taken), in a rolling restart the old worker keeps serving, and after
 * a crash the restart is tried again later.
 */
export async function runWorkers(config: Config, log: Logger): Promise<void> {
  checkPorts(config)
  const slots: Slot[] = Array.from({ length: config.workers }, () => ({
    worker: undefined,
    startedAt: 0,
    failures: 0,
    isReady: false,
    restarts: -1,
  }))
  let shuttingDown = false

  /** A new worker for slot i; resolves once it is ready and in its slot, rejects if it exits before. */
  const fork = (index: number): Promise<Worker> => {
    const slot = slots[index]!
    const worker = cluster.fork({
      SNAPPER_WORKER_INDEX: String(index),
      SNAPPER_WORKER_CONFIG: JSON.stringify(config),
    })
    worker.on('exit', (code, signal) => {
      // Not (or no longer) the slot's worker: its exit is fork()'s rejection or an expected stop.
      if (slot.worker !== worker || shuttingDown) return
      slot.worker = undefined
      slot.isReady = false
      const delayMs = restartLater(index, Date.now() - slot.startedAt < STABLE_AFTER_MS)
      log.error(
        { worker: index, pid: worker.process.pid, code, signal, restartInMs: delayMs },
        'worker died; restarting it',
      )
    })
    return new Promise((resolve, reject) => {
      worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'failed') {
          reject(new Error(`worker ${index} could not start: ${message.reason}`))
          return
        }
        if (message.type !== 'ready') return
        slot.worker = worker
        slot.startedAt = Date.now()
        slot.isReady = true
        slot.restarts++
        log.info({ worker: index, pid: worker.process.pid, ...message }, 'worker ready')
        resolve(worker)
      })
      worker.once('exit', (code, signal) =>
        reject(new Error(`worker ${index} exited (${signal ?? `code ${code}`}) before it was ready`)),
      )
    })
  }

  /** Restarts slot i after a delay that grows while its workers keep dying young; returns the delay. */
  const restartLater = (index: number, isYoung: boolean): number => {
    const slot = slots[index]!
    slot.failures = isYoung ? slot.failures + 1 : 0
    const delayMs = Math.min(MAX_RESTART_DELAY_MS, slot.failures === 0 ? 0 : 500 * 2 ** slot.failures)
    setTimeout(() => {
      // Draining: nothing to restart. A worker in the slot: a rolling restart filled it meanwhile.
      if (shuttingDown || slot.worker) return
      fork(index).catch((err: unknown) => {
        const retryInMs = restartLater(index, true)
        log.error({ err, worker: index, restartInMs: retryInMs }, 'worker restart failed')
      })
    }, delayMs)
    return delayMs
  }

  // Every live worker, also one still starting (in no slot yet). SIGTERM once: a worker counts a
  // second SIGTERM as "exit now, skip the drain". Resolves with its exit code (null: killed by a signal).
  const stopping = new Map<Worker, Promise<number | null>>()
  const stopWorker = (worker: Worker): Promise<number | null> => {
    let stopped = stopping.get(worker)
    if (!stopped) {
      stopped = worker.isDead()
        ? Promise.resolve(worker.process.exitCode)
        : new Promise(resolve => {
            worker.once('exit', code => resolve(code))
            worker.process.kill('SIGTERM')
          })
      stopping.set(worker, stopped)
    }
    return stopped
  }
  /** Stops every worker; resolves with the exit codes of those that were serving (in a slot). */
  const stopAll = async (): Promise<(number | null)[]> => {
    // One that never became ready has said why already; its exit code says nothing of the drain.
    const serving = new Set(slots.map(slot => slot.worker))
    const workers = Object.values(cluster.workers ?? {}).filter(worker => worker !== undefined)
    const codes = await Promise.all(workers.map(stopWorker))
    return codes.filter((_, i) => serving.has(workers[i]))
  }

  // Fails fast, before any worker is forked, if Redis cannot be reached.
  const redis = await connectRedis(config, log)
  const admin =
    config.adminPort === 0
      ? undefined
      : await startPrimaryAdmin(config, log, redis, slots, () => shuttingDown)
  if (!admin) await redis.quit()
  try {
    await Promise.all(slots.map((_, i) => fork(i)))
  } catch (err) {
    // A worker that cannot start now (a port taken, a bad config) would not start later either:
    // the start fails, with its reason, and leaves nothing running.
    shuttingDown = true
    await stopAll()
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
      for (let i = 0; i < slots.length && !shuttingDown; i++) {
        const old = slots[i]!.worker
        if (!old) continue // it died: its pending restart starts the new code
        try {
          await fork(i) // takes the slot once ready: old's exit is then no crash
        } catch (err) {
          // The new code does not start: the old worker keeps serving, and so do the ones after it.
          throw new Error(`stopped at worker ${i}, the old workers keep serving`, { cause: err })
        }
        await stopWorker(old)
      }
      log.info('rolling restart done')
    })()
      .catch((err: unknown) => log.error({ err }, 'rolling restart failed'))
      .finally(() => {
        rolling = false
      })
  })

  // A worker exits 1 when its own drain (drainTimeoutMs) fails; the margin lets it get there first.
  onShutdown(log, config.drainTimeoutMs + PRIMARY_DRAIN_MARGIN_MS, async () => {
    shuttingDown = true
    const codes = await stopAll()
    await admin?.close()
    const failed = codes.filter(code => code !== 0).length
    if (failed > 0) throw new Error(`${failed} of ${codes.length} workers did not drain cleanly`)
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
      tokens: tokensOf(config),
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

/**
 * Entry of a worker process: the primary's config, a node on gatewayPort +
 * index. If the node cannot start, the worker tells the primary why and exits
 * 1 (its IPC channel would otherwise keep it alive, unready, for good).
 */
export async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env.SNAPPER_WORKER_CONFIG ?? '{}') as Config
  const index = Number(process.env.SNAPPER_WORKER_INDEX ?? 0)
  const log = createLogger(config.logLevel, { worker: index })
  let running: RunningNode
  try {
    running = await startNode(
      config,
      log,
      { gateway: config.gatewayPort + index, producer: config.producerPort },
      { registry: workerRegistry(), processMetrics: true },
    )
  } catch (err) {
    if (!process.send) throw err // not forked by a primary: nobody to tell
    const failed: WorkerMessage = { type: 'failed', reason: (err as Error).message }
    // Exit once the message is written (or could not be: the primary is gone).
    process.send(failed, undefined, undefined, () => process.exit(1))
    return
  }
  // A stop signal often reaches a worker twice: Ctrl-C (SIGINT) and systemd's stop (SIGTERM) go
  // to the whole process group, and the primary passes them on as SIGTERM. So a worker drains
  // once and never takes a repeat as "exit now": the drain timeout bounds it. SIGHUP to the
  // group (a closed terminal) is the primary's rolling restart; its default action here would
  // kill the worker undrained.
  process.on('SIGHUP', () => {})
  onShutdown(log, config.drainTimeoutMs, () => running.stop(), { repeatExits: false })
  const ready: WorkerMessage = { type: 'ready', ...running.ports }
  process.send?.(ready)
}
