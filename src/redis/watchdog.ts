/**
 * A node's watch on Redis. A Redis that hangs (stopped, swapping, stuck in a
 * long script) keeps its TCP connection open: no error event, nothing in the
 * offline queue, no command fails (the clients have no commandTimeout), the
 * commands just wait. Only a PING that goes unanswered says so. So every
 * intervalMs the watchdog asks (redisProblem: its own timeout and connection,
 * nothing queued on a connection that is down, every master of a cluster:
 * a Redis busy with the node's appends answers it) and logs the
 * changes, once each:
 *
 *   up ───PING unanswered, or a connection down──▶ down   warn 'redis not answering'
 *   down ──────────────PING answered─────────────▶ up     info 'redis answering again'
 *
 * On a cluster, while down, the set of masters that do not serve may change
 * without Redis coming up: a second master stalls, the cluster turns `fail`,
 * one of two stalled masters comes back. Each such change is a line too, one
 * per master (docs/RELIABILITY.md, "One stalled master"):
 *
 *   a master stops serving     warn 'redis master not serving'    (master, problem)
 *   a master serves again      info 'redis master serving again'  (master, outageMs)
 *
 * The next PING is sent intervalMs after the last one was settled (1 s while down): PINGs never pile up.
 * checkNow() sends it at once, when a command met what the next PING would find (CLUSTERDOWN).
 * Each PING's outcome is also passed to onPing (not only the changes: a
 * reconnect marks Redis answering before the next PING): the node refuses
 * what needs Redis at once while it does not answer (RedisClients.setAnswering).
 */
import type { Logger } from '../log.js'

/** How soon a Redis that did not answer is asked again, in ms (at most intervalMs). */
const DOWN_RECHECK_MS = 1000

/** What a probe of a cluster found: why it cannot serve (undefined: it can), and each master that does not, with why. */
export interface ClusterProbeAnswer {
  readonly problem: string | undefined
  /** By `host:port`; empty when nothing is known per master (the cluster client itself is not ready). */
  readonly masterProblems: ReadonlyMap<string, string>
}

export interface RedisWatchdogOptions {
  /** Why Redis cannot serve now, or undefined when it answers (redisProblem); on a cluster, master by master. Never rejects. */
  readonly probe: () => Promise<string | undefined | ClusterProbeAnswer>
  readonly log: Logger
  /** Pause between one PING's answer (or timeout) and the next PING, in ms. */
  readonly intervalMs: number
  /** Where Redis is, for the log lines (no password). */
  readonly server: string
  /** Called after each PING: true if it was answered, false if not. */
  readonly onPing?: (isUp: boolean) => void
}

export class RedisWatchdog {
  readonly #options: RedisWatchdogOptions
  #timer: NodeJS.Timeout | undefined
  #isStopped = false
  /** Whether a PING is under way. */
  #isChecking = false
  /** When checkNow() last sent a PING early (Date.now()). */
  #checkedEarlyAtMs = 0
  /** When the last PING was answered (Date.now()). */
  #lastAnswerAtMs = Date.now()
  /** When the first unanswered PING of this outage was sent; undefined while Redis answers. */
  #downSinceMs: number | undefined
  /** On a cluster, while down: the masters that do not serve, each with when its first unanswered PING was sent. */
  readonly #mastersDownSinceMs = new Map<string, number>()

  constructor(options: RedisWatchdogOptions) {
    this.#options = options
  }

  /** Whether Redis answered the last PING (true before the first): the metric snapper_redis_up. */
  get isUp(): boolean {
    return this.#downSinceMs === undefined
  }

  /** When a PING (on a cluster, every master's) was last answered, Date.now(); the start before the first. */
  get lastAnswerAtMs(): number {
    return this.#lastAnswerAtMs
  }

  start(): void {
    if (this.#timer || this.#isStopped) return
    // Never holds the process: a node that stops clears it, a process that exits does not wait for it.
    this.#timer = setTimeout(() => void this.#check(), this.#options.intervalMs).unref()
  }

  stop(): void {
    this.#isStopped = true
    clearTimeout(this.#timer)
  }

  /**
   * PINGs now rather than at the next interval: a command met a refusal that
   * the PING would find (a Redis Cluster that is down: docs/RELIABILITY.md),
   * and the node should refuse what needs Redis from now on, not after up to
   * intervalMs of requests waiting for it. Nothing if a PING is under way,
   * Redis is known down (asked every second then), or one was sent early
   * within that second: every retry of every command may ask.
   */
  checkNow(): void {
    const nowMs = Date.now()
    if (this.#isStopped || this.#isChecking || !this.isUp) return
    if (nowMs - this.#checkedEarlyAtMs < DOWN_RECHECK_MS) return
    this.#checkedEarlyAtMs = nowMs
    clearTimeout(this.#timer)
    void this.#check()
  }

  /** Never rejects: it runs from a timer, where a rejection would reach unhandledRejection. */
  async #check(): Promise<void> {
    const sentAtMs = Date.now()
    this.#isChecking = true
    try {
      this.#record(await this.#options.probe(), sentAtMs)
    } catch (err) {
      // A bug (the probe answers with a reason, it does not throw): say so, keep watching.
      this.#options.log.error({ err }, 'redis watchdog failed unexpectedly')
    } finally {
      this.#isChecking = false
      // While Redis does not answer, the node refuses what needs it: ask again soon, so that a Redis
      // slow for a moment is served again within a second of answering, not a whole interval later.
      if (!this.#isStopped)
        this.#timer = setTimeout(
          () => void this.#check(),
          this.isUp ? this.#options.intervalMs : Math.min(this.#options.intervalMs, DOWN_RECHECK_MS),
        ).unref()
    }
  }

  #record(answer: string | undefined | ClusterProbeAnswer, sentAtMs: number): void {
    const { log, server, onPing } = this.#options
    const { problem, masterProblems } =
      typeof answer === 'object' ? answer : { problem: answer, masterProblems: new Map<string, string>() }
    onPing?.(problem === undefined)
    const nowMs = Date.now()
    if (problem === undefined) {
      this.#lastAnswerAtMs = nowMs
      this.#mastersDownSinceMs.clear()
      if (this.#downSinceMs === undefined) return
      log.info({ redis: server, outageMs: nowMs - this.#downSinceMs }, 'redis answering again')
      this.#downSinceMs = undefined
      return
    }
    if (this.#downSinceMs === undefined) {
      this.#downSinceMs = sentAtMs
      for (const master of masterProblems.keys()) this.#mastersDownSinceMs.set(master, sentAtMs)
      // On a cluster, every master that does not serve, not only the first.
      const problems = masterProblems.size > 0 ? { problems: [...masterProblems.values()] } : {}
      log.warn(
        { redis: server, problem, ...problems, lastAnswerAgoMs: nowMs - this.#lastAnswerAtMs },
        'redis not answering',
      )
      return
    }
    // Nothing known per master (one Redis, or the cluster client is not ready): nothing changed that we know.
    if (masterProblems.size === 0) return
    const mastersDown = [...masterProblems.keys()]
    for (const [master, why] of masterProblems) {
      if (this.#mastersDownSinceMs.has(master)) continue
      this.#mastersDownSinceMs.set(master, sentAtMs)
      log.warn({ redis: server, master, problem: why, mastersDown }, 'redis master not serving')
    }
    for (const [master, sinceMs] of this.#mastersDownSinceMs) {
      if (masterProblems.has(master)) continue
      this.#mastersDownSinceMs.delete(master)
      log.info(
        { redis: server, master, outageMs: nowMs - sinceMs, mastersDown },
        'redis master serving again',
      )
    }
  }
}
