/**
 * What each process of `snapper start` may need in open files once full, by
 * the config, against the open-files limit it runs under: every socket is a
 * file. Which process holds what (src/cli/primary.ts, worker.ts, node.ts):
 *
 *   --workers 0   one node: sessions, producer connections, admin connections,
 *                 the open-files reserve, Redis, its own
 *   --workers N   each worker: sessions, producer connections (the primary
 *                 hands each accepted one over), the reserve, Redis, its own
 *                 the primary: admin connections, its Redis (the admin app's),
 *                 one IPC channel per worker, its own
 *
 * A process that needs more than its limit runs out of files before its
 * limits refuse anyone (README, "Limits and bad input", Open files).
 */
import type { Config } from '../config/defaults.js'
import { reserveFilesWithin } from '../open-files-guard.js'

/**
 * Files a process holds whatever it serves: stdio, epoll, libuv's pipes and
 * eventfds, its listening sockets (23 measured for a node with its admin app), with room.
 */
export const OWN_FILES = 32

/**
 * Redis connections per server named in the config: commands, subscriber,
 * the watchdog's PING, the replicated writer. On a Cluster, per seed: an
 * estimate of one of each per master.
 */
const REDIS_CONNECTIONS_PER_SERVER = 4

/** The settings that grow with load, which an operator may lower. */
type ConnectionKey = 'maxSessions' | 'maxProducerConnections' | 'adminMaxConnections'

export interface FilesBudget {
  /** Which process: the single node, each worker, or the primary. */
  readonly process: 'node' | 'worker' | 'primary'
  /** What it may need, full, by part. */
  readonly parts: Readonly<Partial<Record<ConnectionKey | 'openFilesReserve', number>>> & {
    readonly redisConnections: number
    readonly ownFiles: number
    readonly workerChannels?: number
  }
  readonly filesNeeded: number
}

export type BudgetConfig = Pick<
  Config,
  | 'workers'
  | 'redis'
  | 'adminPort'
  | 'maxSessions'
  | 'maxProducerConnections'
  | 'adminMaxConnections'
  | 'openFilesReserve'
>

/** The budget of each kind of process `snapper start` runs with `config`, under `openFilesLimit`. */
export function filesBudgets(config: BudgetConfig, openFilesLimit: number): FilesBudget[] {
  const redisConnections =
    REDIS_CONNECTIONS_PER_SERVER * (config.redis.kind === 'standalone' ? 1 : config.redis.nodes.length)
  const hasAdmin = config.adminPort !== 0
  const admin = hasAdmin ? { adminMaxConnections: config.adminMaxConnections } : {}
  const connections = {
    maxSessions: config.maxSessions,
    maxProducerConnections: config.maxProducerConnections,
  }
  const kept = {
    openFilesReserve: reserveFilesWithin(config.openFilesReserve, openFilesLimit),
    redisConnections,
    ownFiles: OWN_FILES,
  }
  if (config.workers === 0) return [budget('node', { ...connections, ...admin, ...kept })]
  return [
    budget('worker', { ...connections, ...kept }),
    budget('primary', {
      ...admin,
      redisConnections: hasAdmin ? redisConnections : 0,
      workerChannels: config.workers,
      ownFiles: OWN_FILES,
    }),
  ]
}

function budget(process: FilesBudget['process'], parts: FilesBudget['parts']): FilesBudget {
  const filesNeeded = Object.values(parts).reduce((sum, files) => sum + files, 0)
  return { process, parts, filesNeeded }
}

/** How to fit a budget past the limit: its largest connection setting lowered to `lowerTo` (if 1 or more will do), or the limit raised. */
export function fitWithin(
  { parts, filesNeeded }: FilesBudget,
  openFilesLimit: number,
): { lower?: ConnectionKey; lowerTo?: number; raiseLimitTo: number } {
  const keys = (['maxSessions', 'maxProducerConnections', 'adminMaxConnections'] as const).filter(
    key => parts[key] !== undefined,
  )
  const largest = keys.reduce<ConnectionKey | undefined>(
    (most, key) => (most === undefined || parts[key]! > parts[most]! ? key : most),
    undefined,
  )
  const lowerTo = largest === undefined ? 0 : parts[largest]! - (filesNeeded - openFilesLimit)
  return lowerTo >= 1 ? { lower: largest, lowerTo, raiseLimitTo: filesNeeded } : { raiseLimitTo: filesNeeded }
}

/** How the warning names a part that is no setting: its count, then this label (a setting: its key, then its count). */
const PART_LABELS: Readonly<Record<string, string>> = {
  redisConnections: 'Redis connections',
  workerChannels: 'worker channels',
  ownFiles: 'of its own',
} satisfies Partial<Record<keyof FilesBudget['parts'], string>>

/** The budget as a sum, for the warning: `maxSessions 100000 + … + 32 of its own`. */
export function describeBudget({ parts }: FilesBudget): string {
  return Object.entries(parts)
    .filter(([, files]) => files > 0)
    .map(([part, files]) => {
      const label = PART_LABELS[part]
      return label === undefined ? `${part} ${files}` : `${files} ${label}`
    })
    .join(' + ')
}
