import type { Logger } from '../log.js'

/**
 * A WAIT that saw fewer replicas than redisReplicaAcks in time: the master
 * ran the writes before it, the replicas may not have them. An expected
 * state while a replica is down or behind, not a failure of Redis.
 */
export class TooFewReplicas extends Error {
  constructor(
    /** Replicas that confirmed in time. */
    readonly confirmed: number,
    /** Replicas asked for (redisReplicaAcks). */
    readonly wanted: number,
    /** The server the WAIT ran on (ReplicatedWriter.serverOf). */
    readonly server: string,
  ) {
    super(`WAIT: ${confirmed} of ${wanted} replicas confirmed in time`)
    this.name = 'TooFewReplicas'
  }
}

/** Where one server's shortfall stands: what was last logged, and what came since. */
interface Shortfall {
  confirmed: number
  /** WAITs that came back short since it began, each refusing its pipeline's writes. */
  waitsRefused: number
  readonly sinceMs: number
}

/**
 * The log of the servers whose replicas do not confirm writes (README,
 * Redis Cluster): one warn line when a server's shortfall begins, and again
 * only when the number of replicas confirming changes; the refusals between
 * are counted, and said in one info line when a WAIT there confirms again.
 * A replica down for an hour under a steady publisher writes two lines, not
 * one per refused publish, join or leave.
 */
export class ReplicaShortfalls {
  readonly #log: Logger
  readonly #byServer = new Map<string, Shortfall>()

  constructor(log: Logger) {
    this.#log = log
  }

  /** A WAIT on `err.server` saw too few replicas: the writes of its pipeline are refused. */
  refused(err: TooFewReplicas): void {
    const { server, confirmed, wanted } = err
    const shortfall = this.#byServer.get(server)
    if (shortfall?.confirmed === confirmed) {
      shortfall.waitsRefused++
      return
    }
    const waitsRefused = (shortfall?.waitsRefused ?? 0) + 1
    this.#byServer.set(server, { confirmed, waitsRefused, sinceMs: shortfall?.sinceMs ?? Date.now() })
    this.#log.warn(
      { server, confirmed, redisReplicaAcks: wanted, ...(shortfall && { waitsRefused }) },
      'too few redis replicas confirm writes',
    )
  }

  /** A WAIT on `server` saw enough replicas. */
  confirmed(server: string): void {
    if (this.#byServer.size === 0) return // the usual case: one map lookup less
    const shortfall = this.#byServer.get(server)
    if (!shortfall) return
    this.#byServer.delete(server)
    this.#log.info(
      { server, waitsRefused: shortfall.waitsRefused, forMs: Date.now() - shortfall.sinceMs },
      'redis replicas confirm writes again',
    )
  }
}
