import { guard } from './guard.js'
import type { Logger } from './log.js'
import { RatePerSecond } from './rate.js'

/**
 * The log of what a stranger can cause once per connection or handshake (a
 * producer connection refused, its token, its frames; a consumer handshake's
 * token or codec): at most `perSecond` lines of
 * each message a second. Those left out are counted, and said in one line
 * when their second ends, so that a flood of connections cannot flood the
 * log (and the disk under it).
 */
export class RefusalLog {
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

  /** `log` is the caller's (a connection's, with its address); the count goes to the listener's. */
  #write(log: Logger, level: 'info' | 'warn', fields: Record<string, unknown>, message: string): void {
    if (this.#rate.admits(message)) return log[level](fields, message)
    const skipped = (this.#skipped.get(message) ?? 0) + 1
    this.#skipped.set(message, skipped)
    if (skipped > 1) return
    const report = (): void => {
      const count = this.#skipped.get(message) ?? 0
      this.#skipped.delete(message)
      this.#log[level]({ skipped: count, perSecond: this.#perSecond }, `${message} (more in one second)`)
    }
    setTimeout(guard(this.#log, 'refusal log', report), this.#rate.windowEndsAtMs - Date.now()).unref()
  }
}
