import cluster, { type Worker } from 'node:cluster'
import type { Config } from '../config/defaults.js'
import { createLogger, type Logger } from '../log.js'
import { startNode } from './node.js'
import { onShutdown } from './start.js'

/** Messages a worker sends to the primary. */
type WorkerMessage = { readonly type: 'ready'; readonly gateway: number; readonly producer: number }

/** A worker that dies sooner than this after its start counts as crash-looping, in ms. */
const STABLE_AFTER_MS = 5000
const MAX_RESTART_DELAY_MS = 30_000

/**
 * The primary of `snapper start --workers N`: forks N worker nodes (worker i
 * serves consumers on gatewayPort + i; all share the producer port), restarts
 * any that dies (saying why, backing off if it keeps dying), restarts them one
 * by one on SIGHUP (rolling restart: the new one is up before the old drains),
 * and drains them all on SIGTERM/SIGINT.
 */
export async function runWorkers(config: Config, log: Logger): Promise<void> {
  const slots: { worker: Worker | undefined; startedAt: number; failures: number }[] = []
  let shuttingDown = false

  const fork = (index: number): Promise<Worker> => {
    const worker = cluster.fork({
      SNAPPER_WORKER_INDEX: String(index),
      SNAPPER_WORKER_CONFIG: JSON.stringify(config),
    })
    const slot = (slots[index] ??= { worker: undefined, startedAt: 0, failures: 0 })
    slot.worker = worker
    slot.startedAt = Date.now()
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker || shuttingDown) return
      slot.worker = undefined
      slot.failures = Date.now() - slot.startedAt < STABLE_AFTER_MS ? slot.failures + 1 : 0
      const delayMs = Math.min(MAX_RESTART_DELAY_MS, slot.failures === 0 ? 0 : 500 * 2 ** slot.failures)
      log.error({ worker: index, pid: worker.process.pid, code, signal, restartInMs: delayMs }, 'worker died; restarting it')
      setTimeout(() => void fork(index).catch(err => log.error({ err, worker: index }, 'worker restart failed')), delayMs)
    })
    return new Promise((resolve, reject) => {
      worker.on('message', (message: WorkerMessage) => {
        if (message.type !== 'ready') return
        log.info({ worker: index, pid: worker.process.pid, ...message }, 'worker ready')
        resolve(worker)
      })
      worker.once('exit', code => reject(new Error(`worker ${index} exited with code ${code} before it was ready`)))
    })
  }

  const stopWorker = (worker: Worker): Promise<void> =>
    new Promise(resolve => {
      if (worker.isDead()) return resolve()
      worker.once('exit', () => resolve())
      worker.process.kill('SIGTERM')
    })

  await Promise.all(Array.from({ length: config.workers }, (_, i) => fork(i)))
  log.info({ workers: config.workers, producerPort: config.producerPort, gatewayPorts: `${config.gatewayPort}+i` }, 'broker started')

  let rolling = false
  process.on('SIGHUP', () => {
    if (rolling || shuttingDown) return
    rolling = true
    void (async () => {
      log.info('rolling restart')
      for (let i = 0; i < slots.length; i++) {
        const old = slots[i]?.worker
        if (old) slots[i]!.worker = undefined // its exit is expected, not a crash
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
  })
}

/** Entry of a worker process: the primary's config, a node on gatewayPort + index. */
export async function runWorker(): Promise<void> {
  const config = JSON.parse(process.env.SNAPPER_WORKER_CONFIG ?? '{}') as Config
  const index = Number(process.env.SNAPPER_WORKER_INDEX ?? 0)
  const log = createLogger(config.logLevel, { worker: index })
  const running = await startNode(config, log, { gateway: config.gatewayPort + index, producer: config.producerPort })
  onShutdown(log, config.drainTimeoutMs, () => running.stop())
  const ready: WorkerMessage = { type: 'ready', ...running.ports }
  process.send?.(ready)
}
