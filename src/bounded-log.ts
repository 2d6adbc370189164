import { guard } from './guard.js'
import type { Logger } from './log.js'
import { RatePerSecond } from './rate.js'

/**
 * A log of what can happen once per connection, request or consumer, where
 * one cause can bring thousands a second: at most `perSecond` lines of each
 * message a second. Those left out are counted, and said in one line
 * (`<message> (more in one second)`, with `skipped`) when their second ends,
 * so that a flood cannot flood the log (and the disk under it). The callers'
 * counters and metrics still count every one.
 *
 * Two kinds, each with its bound: refusals, what a stranger can cause (a
 * producer connection refused, its token, its frames; a consumer handshake's
 * token or codec: logMaxRefusalsPerSec), and failures, what one Redis outage
 * fails per request or per consumer (a publish answered STORE_UNAVAILABLE, a
 * consumer's connect, release or log read: logMaxFailuresPerSec).
 */
export class BoundedLog {
  readonly #log: Logger
  readonly #perSecond: number
  readonly #rate: RatePerSecond
  /** By message: the lines left out since the last count was said. */
  readonly #skipped = new Map<string, number>()

  constructor(log: Logger, perSecond: number) {
    this.#log = log
    this.#perSecond = perSecond
    this.#rate = new RatePerSecond(perSecond)
  }

  info(log: Logger, fields: Record<string, unknown>, message: string): void {
    this.#write(log, 'info', fields, message)
  }

  warn(log: Logger, fields: Record<string, unknown>, message: string): void {
    this.#write(log, 'warn', fields, message)
  }

  error(log: Logger, fields: Record<string, unknown>, message: string): void {
    this.#write(log, 'error', fields, message)
  }

  /** `log` is the caller's (a connection's, with its address); the count goes to this one's own. */
  #write(
    log: Logger,
    level: 'info' | 'warn' | 'error',
    fields: Record<string, unknown>,
    message: string,
  ): void {
    if (this.#rate.admits(message)) return log[level](fields, message)
    const skipped = (this.#skipped.get(message) ?? 0) + 1
    this.#skipped.set(message, skipped)
    if (skipped > 1) return
    const report = (): void => {
      const count = this.#skipped.get(message) ?? 0
      this.#skipped.delete(message)
      this.#log[level]({ skipped: count, perSecond: this.#perSecond }, `${message} (more in one second)`)
    }
    setTimeout(guard(this.#log, 'bounded log', report), this.#rate.windowEndsAtMs - Date.now()).unref()
  }
}
