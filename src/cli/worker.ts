/**
 * A worker process of `snapper start --workers N`, and what it and its
 * primary say to each other: the primary passes the config and the worker's
 * index in the environment (validated here, as a config file would be), the
 * worker answers over the IPC channel once its listeners are up, or why it
 * cannot start.
 */
import { ConfigError, parseConfig, type Config } from '../config/load.js'
import { createLogger, type Logger } from '../log.js'
import { workerRegistry } from '../metrics/cluster.js'
import { startNode, type RunningNode } from './node.js'

/** Messages a worker sends to the primary: its listeners are up, or it cannot start (and exits 1). */
export type WorkerMessage =
  | { readonly type: 'ready'; readonly gateway: number; readonly producer: number }
  | { readonly type: 'failed'; readonly reason: string }

const CONFIG_VARIABLE = 'SNAPPER_WORKER_CONFIG'
const INDEX_VARIABLE = 'SNAPPER_WORKER_INDEX'
const TAKES_OVER_VARIABLE = 'SNAPPER_WORKER_TAKES_OVER'
/** The variables a primary sets for its workers: no options, but not unknown either. */
export const WORKER_VARIABLES = [CONFIG_VARIABLE, INDEX_VARIABLE, TAKES_OVER_VARIABLE] as const

/**
 * The environment the primary forks worker `index` with; `takesOver` when it
 * replaces a worker that still listens (a rolling restart): it shares that
 * one's gateway port instead of asking for a free one.
 */
export function workerEnvironment(config: Config, index: number, takesOver = false): Record<string, string> {
  return {
    [CONFIG_VARIABLE]: JSON.stringify(config),
    [INDEX_VARIABLE]: String(index),
    ...(takesOver && { [TAKES_OVER_VARIABLE]: '1' }),
  }
}

/** What a worker reads from its environment; throws a ConfigError naming what is wrong. */
export function readWorkerEnvironment(env: Readonly<Record<string, string | undefined>>): {
  config: Config
  index: number
} {
  let value: unknown
  try {
    value = JSON.parse(env[CONFIG_VARIABLE] ?? '')
  } catch {
    value = undefined // not JSON: parseConfig names the variable
  }
  const config = parseConfig(value, `worker config (${CONFIG_VARIABLE})`)
  const index = Number(env[INDEX_VARIABLE])
  if (!Number.isInteger(index) || index < 0 || index >= config.workers)
    throw new ConfigError(
      `${INDEX_VARIABLE}: expected a worker index below ${config.workers}, got ${env[INDEX_VARIABLE]}`,
    )
  return { config, index }
}

export interface RunningWorker {
  readonly node: RunningNode
  readonly config: Config
  readonly log: Logger
  /** Tells the primary this worker serves (call once its signal handlers are in place). */
  announceReady(): void
}

/** Starts this worker's node on gatewayPort + index, from the primary's config. */
export async function startWorker(env: Readonly<Record<string, string | undefined>>): Promise<RunningWorker> {
  const { config, index } = readWorkerEnvironment(env)
  const log = createLogger(config.logLevel, { worker: index })
  const node = await startNode(
    config,
    log,
    { gateway: config.gatewayPort + index, producer: config.producerPort },
    { registry: workerRegistry(), ownsProcess: true, takesOverGateway: env[TAKES_OVER_VARIABLE] === '1' },
  )
  return {
    node,
    config,
    log,
    announceReady() {
      const ready: WorkerMessage = { type: 'ready', ...node.ports }
      process.send?.(ready)
    },
  }
}

/**
 * Tells the primary why this worker cannot start; resolves once the message
 * is written (or could not be: the primary is gone), with false when there is
 * no primary to tell. The caller then exits: the IPC channel would otherwise
 * keep the worker alive, unready, for good.
 */
export function reportStartFailure(err: unknown): Promise<boolean> {
  const failed: WorkerMessage = { type: 'failed', reason: (err as Error).message }
  return new Promise(resolve => {
    if (!process.send) return resolve(false)
    process.send(failed, undefined, undefined, () => resolve(true))
  })
}
