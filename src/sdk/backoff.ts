/**
 * Reconnect delays: exponential from `minMs` to `maxMs`, each drawn at random
 * in its upper half, so that clients dropped together do not come back
 * together. reset() after a connection succeeds.
 */
export class Backoff {
  readonly #minMs: number
  readonly #maxMs: number
  #attempt = 0
  #isAtFirst = true

  constructor(minMs: number, maxMs: number) {
    this.#minMs = minMs
    this.#maxMs = Math.max(minMs, maxMs)
  }

  /** The longest delay, in ms. */
  get maxMs(): number {
    return this.#maxMs
  }

  /** Whether no delay was drawn since the start or reset(): the last attempt did not fail. */
  get isAtFirst(): boolean {
    return this.#isAtFirst
  }

  /** The next delay, in ms. */
  next(): number {
    this.#isAtFirst = false
    const capMs = Math.min(this.#maxMs, this.#minMs * 2 ** this.#attempt)
    if (capMs < this.#maxMs) this.#attempt++
    return capMs / 2 + (Math.random() * capMs) / 2
  }

  reset(): void {
    this.#attempt = 0
    this.#isAtFirst = true
  }
}

/** A delay the server asked for, spread over [ms, 1.5 ms] so that the clients it told do not return at once. */
export const jittered = (ms: number): number => ms + (Math.random() * ms) / 2
