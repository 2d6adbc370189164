import cluster, { type Worker } from 'node:cluster'
import { tokensOf } from '../auth/token.js'
import type { Config } from '../config/defaults.js'
import { ConfigError } from '../config/env.js'
import type { Logger } from '../log.js'
import { PACKAGE } from '../package.js'
import { clusterScraper, type MetricsMessage } from '../metrics/cluster.js'
import { Registry, registerPrimaryMetrics, registerProcessMetrics } from '../metrics/index.js'
import type { RedisClients } from '../redis/connect.js'
import { startAdmin, type RunningAdmin } from './admin.js'
import { connectRedis, watchRedis } from './node.js'
import { workerEnvironment, type WorkerMessage } from './worker.js'

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

/** One worker as /stats shows it. */
export interface WorkerDetails {
  readonly index: number
  readonly pid: number | null
  readonly gatewayPort: number
  readonly isReady: boolean
  readonly restarts: number
}

/**
 * The primary of `snapper start --workers N`: forks N worker nodes (worker i
 * serves consumers on gatewayPort + i; all share the producer port), restarts
 * any that dies (saying why, backing off if it keeps dying), restarts them one
 * by one on request (rolling restart: the new one is up before the old
 * drains), and drains them all. Unless adminPort is 0, the primary also runs
 * the admin app, over a Redis connection of its own: the HTTP publish API
 * works from here, /metrics sums every worker's metrics, and /readyz is ready
 * once every worker reported ready and Redis answers.
 *
 * A worker that fails before it is ready is never restarted by #fork()
 * itself; its caller decides: at start-up the whole start fails (a port taken
 * stays taken), in a rolling restart the old worker keeps serving, and after
 * a crash the restart is tried again later.
 */
export class Primary {
  /** How long a drain may take before the process gives up on it, in ms. */
  readonly drainTimeoutMs: number
  readonly #config: Config
  readonly #log: Logger
  readonly #slots: Slot[]
  /**
   * Every worker asked to stop, with its exit code to come (null: killed by a signal). SIGTERM
   * once: a worker counts a second SIGTERM as "exit now, skip the drain".
   */
  readonly #stopping = new Map<Worker, Promise<number | null>>()
  #admin: { close(): Promise<void> } | undefined
  #isShuttingDown = false
  #crashes = 0
  #isRolling = false

  private constructor(config: Config, log: Logger) {
    this.#config = config
    this.#log = log
    // A worker exits 1 when its own drain (drainTimeoutMs) fails; the margin lets it get there first.
    this.drainTimeoutMs = config.drainTimeoutMs + PRIMARY_DRAIN_MARGIN_MS
    this.#slots = Array.from({ length: config.workers }, () => ({
      worker: undefined,
      startedAt: 0,
      failures: 0,
      isReady: false,
      restarts: -1,
    }))
  }

  /**
   * Resolves once every worker is ready. A worker that cannot start now (a
   * port taken, a bad config) would not start later either: the start
   * rejects with its reason and leaves nothing running.
   */
  static async start(config: Config, log: Logger): Promise<Primary> {
    checkPorts(config)
    const primary = new Primary(config, log)
    // Fails fast, before any worker is forked, if Redis cannot be reached.
    const redis = await connectRedis(config, log)
    if (config.adminPort === 0) await redis.quit()
    else primary.#admin = await startPrimaryAdmin(config, log, redis, primary)
    try {
      await Promise.all(primary.#slots.map((_, i) => primary.#fork(i)))
    } catch (err) {
      await primary.#shutDown()
      throw err
    }
    log.info(
      {
        version: PACKAGE.version,
        workers: config.workers,
        producerPort: config.producerPort,
        gatewayPorts: `${config.gatewayPort}+i`,
      },
      'broker started',
    )
    return primary
  }

  /** Restarts the workers one by one, each new one up before the old one drains; once at a time. */
  rollingRestart(): void {
    if (this.#isRolling || this.#isShuttingDown) return
    this.#isRolling = true
    this.#roll()
      .catch((err: unknown) => this.#log.error({ err }, 'rolling restart failed'))
      .finally(() => {
        this.#isRolling = false
      })
  }

  /**
   * Drains every worker, then closes the admin app; rejects if a serving worker did not drain
   * cleanly, else says so in the process's last line.
   */
  async drain(): Promise<void> {
    const startedAtMs = Date.now()
    const codes = await this.#shutDown()
    const failed = codes.filter(code => code !== 0).length
    if (failed > 0) throw new Error(`${failed} of ${codes.length} workers did not drain cleanly`)
    this.#log.info({ drainMs: Date.now() - startedAtMs }, 'broker stopped')
  }

  /** Workers that died while serving (each is restarted): snapper_primary_worker_crashes_total. */
  get crashes(): number {
    return this.#crashes
  }

  /** Why the primary is not ready (/readyz); empty when every worker serves. */
  readiness(): string[] {
    if (this.#isShuttingDown) return ['draining']
    return this.#slots.flatMap((slot, i) => (slot.isReady ? [] : [`worker ${i} not ready`]))
  }

  workers(): WorkerDetails[] {
    return this.#slots.map((slot, index) => ({
      index,
      pid: slot.worker?.process.pid ?? null,
      gatewayPort: this.#config.gatewayPort + index,
      isReady: slot.isReady,
      restarts: Math.max(0, slot.restarts),
    }))
  }

  /** Resolves with the exit codes of the workers that were serving. */
  async #shutDown(): Promise<(number | null)[]> {
    this.#isShuttingDown = true
    const codes = await this.#stopAll()
    await this.#admin?.close()
    return codes
  }

  async #roll(): Promise<void> {
    this.#log.info('rolling restart')
    for (let i = 0; i < this.#slots.length && !this.#isShuttingDown; i++) {
      const old = this.#slots[i]!.worker
      if (!old) continue // it died: its pending restart starts the new code
      try {
        await this.#fork(i, { takesOver: true }) // takes the slot once ready: old's exit is then no crash
      } catch (err) {
        // The new code does not start: the old worker keeps serving, and so do the ones after it.
        throw new Error(`stopped at worker ${i}, the old workers keep serving`, { cause: err })
      }
      await this.#stopWorker(old)
    }
    this.#log.info('rolling restart done')
  }

  /**
   * A new worker for slot i; resolves once it is ready and in its slot, rejects if it exits before.
   * `takesOver`: the slot's worker still listens, and the new one shares its gateway port.
   */
  #fork(index: number, { takesOver = false } = {}): Promise<Worker> {
    const slot = this.#slots[index]!
    const worker = cluster.fork(workerEnvironment(this.#config, index, takesOver))
    worker.on('exit', (code, signal) => {
      // Not (or no longer) the slot's worker: its exit is #fork()'s rejection or an expected stop.
      if (slot.worker !== worker || this.#isShuttingDown) return
      slot.worker = undefined
      slot.isReady = false
      this.#crashes++
      const delayMs = this.#restartLater(index, Date.now() - slot.startedAt < STABLE_AFTER_MS)
      this.#log.error(
        { worker: index, workerPid: worker.process.pid, code, signal, restartInMs: delayMs },
        'worker died; restarting it',
      )
    })
    return new Promise((resolve, reject) => {
      // The metrics messages on the same channel are the scraper's (metrics/cluster.ts).
      worker.on('message', (message: WorkerMessage | MetricsMessage) => {
        if (message.type === 'failed') {
          reject(new Error(`worker ${index} could not start: ${message.reason}`))
          return
        }
        if (message.type !== 'ready') return
        slot.worker = worker
        slot.startedAt = Date.now()
        slot.isReady = true
        slot.restarts++
        this.#log.info({ worker: index, workerPid: worker.process.pid, ...message }, 'worker ready')
        resolve(worker)
      })
      worker.once('exit', (code, signal) =>
        reject(new Error(`worker ${index} exited (${signal ?? `code ${code}`}) before it was ready`)),
      )
    })
  }

  /** Restarts slot i after a delay that grows while its workers keep dying young; returns the delay. */
  #restartLater(index: number, isYoung: boolean): number {
    const slot = this.#slots[index]!
    slot.failures = isYoung ? slot.failures + 1 : 0
    const delayMs = Math.min(MAX_RESTART_DELAY_MS, slot.failures === 0 ? 0 : 500 * 2 ** slot.failures)
    setTimeout(() => {
      // Draining: nothing to restart. A worker in the slot: a rolling restart filled it meanwhile.
      if (this.#isShuttingDown || slot.worker) return
      // Through a promise: a fork that throws (out of processes, say) is retried like one that fails.
      Promise.resolve(index)
        .then(i => this.#fork(i))
        .catch((err: unknown) => {
          const retryInMs = this.#restartLater(index, true)
          this.#log.error({ err, worker: index, restartInMs: retryInMs }, 'worker restart failed')
        })
    }, delayMs)
    return delayMs
  }

  #stopWorker(worker: Worker): Promise<number | null> {
    let stopped = this.#stopping.get(worker)
    if (!stopped) {
      stopped = worker.isDead()
        ? Promise.resolve(worker.process.exitCode)
        : new Promise(resolve => {
            worker.once('exit', code => resolve(code))
            worker.process.kill('SIGTERM')
          })
      this.#stopping.set(worker, stopped)
    }
    return stopped
  }

  /** Stops every live worker, also one still starting; resolves with the exit codes of those that were serving. */
  async #stopAll(): Promise<(number | null)[]> {
    // One that never became ready has said why already; its exit code says nothing of the drain.
    const serving = new Set(this.#slots.map(slot => slot.worker))
    const workers = Object.values(cluster.workers ?? {}).filter(worker => worker !== undefined)
    const codes = await Promise.all(workers.map(worker => this.#stopWorker(worker)))
    return codes.filter((_, i) => serving.has(workers[i]))
  }
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
  primary: Pick<Primary, 'readiness' | 'workers' | 'crashes'>,
): Promise<{ close(): Promise<void> }> {
  const registry = new Registry()
  // Prefixed: the workers' process metrics carry the plain names, and the two texts are concatenated.
  registerProcessMetrics(registry, 'snapper_primary_')
  registerPrimaryMetrics(registry, () => primary.crashes)
  // The admin app's own connection: refused at once while Redis hangs, as a node's are.
  const watchdog = watchRedis(redis, config, log)
  let admin: RunningAdmin
  try {
    admin = await startAdmin({
      config,
      logger: log,
      redis,
      tokens: tokensOf(config),
      port: config.adminPort,
      registry,
      readiness: () => primary.readiness(),
      metrics: clusterScraper(registry),
      details: () => ({ workers: primary.workers() }),
      gatewayPort: config.gatewayPort,
    })
  } catch (err) {
    watchdog.stop()
    await redis.quit()
    throw err
  }
  return {
    async close() {
      await admin.close()
      watchdog.stop()
      await redis.quit()
    },
  }
}
