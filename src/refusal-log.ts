import { guard } from './guard.js'
import type { Logger } from './log.js'

interface Second {
  readonly startedAt: number
  written: number
  skipped: number
}

/**
 * The log of what a stranger can cause once per connection (a producer
 * connection refused, its token, its frames): at most `perSecond` lines of
 * each message a second. Those left out are counted, and said in one line
 * when their second ends, so that a flood of connections cannot flood the
 * log (and the disk under it).
 */
export class RefusalLog {
  readonly #log: Logger
  readonly #perSecond: number
  /** By message: the second being counted. */
  readonly #seconds = new Map<string, Second>()

  constructor(log: Logger, perSecond: number) {
    this.#log = log
    this.#perSecond = perSecond
  }

  info(log: Logger, fields: Record<string, unknown>, message: string): void {
    this.#write(log, 'info', fields, message)
  }

  warn(log: Logger, fields: Record<string, unknown>, message: string): void {
    this.#write(log, 'warn', fields, message)
  }

  /** `log` is the caller's (a connection's, with its address); the count goes to the listener's. */
  #write(log: Logger, level: 'info' | 'warn', fields: Record<string, unknown>, message: string): void {
    const now = Date.now()
    let second = this.#seconds.get(message)
    if (second === undefined || now - second.startedAt >= 1000) {
      second = { startedAt: now, written: 0, skipped: 0 }
      this.#seconds.set(message, second)
    }
    if (second.written < this.#perSecond) {
      second.written++
      log[level](fields, message)
      return
    }
    if (second.skipped++ > 0) return
    const counted = second
    const report = (): void => {
      if (this.#seconds.get(message) === counted) this.#seconds.delete(message)
      this.#log[level](
        { skipped: counted.skipped, perSecond: this.#perSecond },
        `${message} (more in one second)`,
      )
    }
    setTimeout(guard(this.#log, 'refusal log', report), counted.startedAt + 1000 - now).unref()
  }
}
