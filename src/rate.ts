/**
 * Events per key per second, counted in one-second windows: a map of the
 * keys seen in the current window, so it never holds more than one
 * second's worth of keys, and none once a second has passed without events
 * (a timer forgets the window at its end: the keys of the last clients must
 * not stay for as long as no new one comes). Used for handshakes per client
 * address and per user, and for log lines per message.
 */
export class RatePerSecond {
  readonly #maxPerSec: number
  #counts = new Map<string, number>()
  #windowStartMs = 0
  /** Forgets the window once it has ended; one per rate, refreshed as each window opens (unref'd). */
  #forget: NodeJS.Timeout | undefined

  /** @param maxPerSec 0: no limit */
  constructor(maxPerSec: number) {
    this.#maxPerSec = maxPerSec
  }

  /** Keys counted in the current window (a leak check's reading). */
  get size(): number {
    return this.#counts.size
  }

  /** When the current window ends (Date.now() time). */
  get windowEndsAtMs(): number {
    return this.#windowStartMs + 1000
  }

  /** Counts one event of `key`; false when it is over this second's allowance. */
  admits(key: string, nowMs = Date.now()): boolean {
    if (this.#maxPerSec === 0) return true
    if (nowMs - this.#windowStartMs >= 1000) {
      this.#counts = new Map()
      this.#windowStartMs = nowMs
      if (this.#forget) this.#forget.refresh()
      else this.#forget = setTimeout(() => this.#forgetWindow(), 1000).unref()
    }
    const count = (this.#counts.get(key) ?? 0) + 1
    this.#counts.set(key, count)
    return count <= this.#maxPerSec
  }

  /** The window has ended: the next event opens a new one. */
  #forgetWindow(): void {
    this.#counts = new Map()
    this.#windowStartMs = 0
  }
}

/**
 * A token bucket: `perSec` units a second on average, at most `burst` at
 * once (it starts full). Used for the bytes one consumer session may send.
 *
 * Counted in thousandths of a unit and whole ms, so that each field stays a
 * small integer, which V8 keeps in the object, where a fraction takes a heap
 * number of 16 bytes (docs/performance.md, section 1, item 23): a ms adds
 * `perSec` thousandths exactly. A take sees the refill up to its ms (under
 * 1 ms late, never lost). They stay small while burst × 1000 and the process's
 * age in ms are below 2^31 (2.1 MB, 24 days); beyond, they are heap numbers, as exact.
 */
export class TokenBucket {
  readonly #perSec: number
  readonly #burstMilli: number
  #milliTokens: number
  #refilledAtMs: number

  constructor(perSec: number, burst: number, nowMs = performance.now()) {
    this.#perSec = perSec
    this.#burstMilli = burst * 1000
    this.#milliTokens = this.#burstMilli
    this.#refilledAtMs = Math.floor(nowMs)
  }

  /** Takes `units` if the bucket holds them; false (and takes nothing) if not. */
  take(units: number, nowMs = performance.now()): boolean {
    const atMs = Math.floor(nowMs)
    this.#milliTokens = Math.min(
      this.#burstMilli,
      this.#milliTokens + (atMs - this.#refilledAtMs) * this.#perSec,
    )
    this.#refilledAtMs = atMs
    if (units * 1000 > this.#milliTokens) return false
    this.#milliTokens -= units * 1000
    return true
  }
}
