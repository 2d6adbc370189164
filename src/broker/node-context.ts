import { BoundedLog } from '../bounded-log.js'
import { guard } from '../guard.js'
import type { Logger } from '../log.js'

/** Counters for /metrics; each part of the node bumps its own. */
export interface NodeCounters {
  batchesSent: number
  messagesAcked: number
  logReads: number
  logReadErrors: number
  cursorCommits: number
  redisErrors: number
  ackTimeouts: number
  kicks: number
  /** Holes found in what consumers should get (each told with a gap notice). */
  gaps: number
  /** Messages missed in those holes, where the count is known. */
  gapMessages: number
}

/**
 * What the parts of one node share (hub, fan-out, store, handoff, connects, room sync):
 * its counters, its logger, and how a failed Redis command is reported. Such
 * a failure is never thrown: the work is retried, or healed later by a read.
 * Much of it is per consumer or per room, so an outage fails thousands at
 * once: each is counted, and logged through `failures` (at most
 * logMaxFailuresPerSec lines of each message a second, the rest counted in one).
 */
export class NodeContext {
  readonly counters: NodeCounters = {
    batchesSent: 0,
    messagesAcked: 0,
    logReads: 0,
    logReadErrors: 0,
    cursorCommits: 0,
    redisErrors: 0,
    ackTimeouts: 0,
    kicks: 0,
    gaps: 0,
    gapMessages: 0,
  }

  /** The failures of per-consumer and per-room work, logged at most logMaxFailuresPerSec a second per message. */
  readonly failures: BoundedLog

  constructor(
    readonly log: Logger,
    logMaxFailuresPerSec: number,
    /** Whether Redis takes commands now (RedisClients.isReady): periodic tasks wait for it. */
    readonly isRedisReady: () => boolean = () => true,
  ) {
    this.failures = new BoundedLog(log, logMaxFailuresPerSec)
  }

  redisError(err: unknown, message: string, fields: Record<string, unknown> = {}): void {
    this.counters.redisErrors++
    this.failures.warn(this.log, { err, ...fields }, message)
  }

  /**
   * Runs a Redis task every `ms` until the timer is cleared; it never holds
   * the process open, and a failure is reported as `what`. A run is skipped
   * while Redis is down or the last run is still waiting for it: through an
   * outage, periodic work does not pile up in the client's offline queue.
   * `canRun` replaces the first test for a task that says itself which
   * Redis it needs: on a cluster, the masters of the keys it writes
   * (docs/RELIABILITY.md, "One stalled master").
   */
  every(
    ms: number,
    task: () => Promise<unknown>,
    what: string,
    canRun: () => boolean = this.isRedisReady,
  ): NodeJS.Timeout {
    let running = false
    const timer = setInterval(
      guard(this.log, what, () => {
        if (running || !canRun()) return
        const run = task()
        running = true
        run.catch((err: unknown) => this.redisError(err, what)).finally(() => (running = false))
      }),
      ms,
    )
    timer.unref()
    return timer
  }
}
