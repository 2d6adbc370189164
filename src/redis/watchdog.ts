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
 * The next PING is sent intervalMs after the last one was settled (1 s while down): PINGs never pile up.
 * Each PING's outcome is also passed to onPing (not only the changes: a
 * reconnect marks Redis answering before the next PING): the node refuses
 * what needs Redis at once while it does not answer (RedisClients.setAnswering).
 */
import type { Logger } from '../log.js'

/** How soon a Redis that did not answer is asked again, in ms (at most intervalMs). */
const DOWN_RECHECK_MS = 1000

export interface RedisWatchdogOptions {
  /** Why Redis cannot serve now, or undefined when it answers (redisProblem). Never rejects. */
  readonly probe: () => Promise<string | undefined>
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
  /** When the last PING was answered (Date.now()). */
  #lastAnswerAtMs = Date.now()
  /** When the first unanswered PING of this outage was sent; undefined while Redis answers. */
  #downSinceMs: number | undefined

  constructor(options: RedisWatchdogOptions) {
    this.#options = options
  }

  /** Whether Redis answered the last PING (true before the first): the metric snapper_redis_up. */
  get isUp(): boolean {
    return this.#downSinceMs === undefined
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

  /** Never rejects: it runs from a timer, where a rejection would reach unhandledRejection. */
  async #check(): Promise<void> {
    const sentAtMs = Date.now()
    try {
      this.#record(await this.#options.probe(), sentAtMs)
    } catch (err) {
      // A bug (the probe answers with a reason, it does not throw): say so, keep watching.
      this.#options.log.error({ err }, 'redis watchdog failed unexpectedly')
    } finally {
      // While Redis does not answer, the node refuses what needs it: ask again soon, so that a Redis
      // slow for a moment is served again within a second of answering, not a whole interval later.
      if (!this.#isStopped)
        this.#timer = setTimeout(
          () => void this.#check(),
          this.isUp ? this.#options.intervalMs : Math.min(this.#options.intervalMs, DOWN_RECHECK_MS),
        ).unref()
    }
  }

  #record(problem: string | undefined, sentAtMs: number): void {
    const { log, server, onPing } = this.#options
    onPing?.(problem === undefined)
    const nowMs = Date.now()
    if (problem === undefined) {
      this.#lastAnswerAtMs = nowMs
      if (this.#downSinceMs === undefined) return
      log.info({ redis: server, outageMs: nowMs - this.#downSinceMs }, 'redis answering again')
      this.#downSinceMs = undefined
      return
    }
    if (this.#downSinceMs !== undefined) return
    this.#downSinceMs = sentAtMs
    log.warn({ redis: server, problem, lastAnswerAgoMs: nowMs - this.#lastAnswerAtMs }, 'redis not answering')
  }
}
