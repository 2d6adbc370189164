import { TokenBucket } from '../../rate.js'

/** One budget and the sessions drawing on it; `idleSinceMs` once none does. */
interface Budget {
  readonly bucket: TokenBucket
  sessions: number
  idleSinceMs: number
}

/**
 * What clients may send (EngineOptions.maxInputBytesPerSec), by key: the
 * sessions of one key (the application's inputKey, else the sid) draw on one
 * token bucket, and a bucket outlives its sessions until it has filled up
 * again. So a client closed for too much input, or one that closes and
 * reconnects to send its next burst, comes back to the budget it left; a
 * fresh one per session let a reconnect loop of one token send 40 MB a
 * second (README, Limits and bad input).
 *
 *   take(key) ─▶ held (sessions > 0) ─release, last─▶ idle ─refill time─▶ forgotten
 *                       ▲                              │
 *                       └────────── take(key) ─────────┘
 *
 * Idle budgets are kept in the order they went idle and dropped from the
 * front as each take or release passes by, and by one timer (unref'd) at
 * the oldest one's refill time while any is idle: at most one refill time's
 * worth of idle keys, and none once the last clients have been gone that long.
 */
export class InputBudgets {
  readonly #perSec: number
  readonly #burst: number
  /** How long an emptied bucket takes to fill up again, in ms: then it is as good as new. */
  readonly #refillMs: number
  readonly #budgets = new Map<string, Budget>()
  /** The keys no session holds, oldest idle first (a Map keeps insertion order). */
  readonly #idle = new Map<string, Budget>()
  /** Forgets the refilled idle budgets when no take or release comes by; set while any budget is idle. */
  #sweep: NodeJS.Timeout | undefined

  /** `perSec` 0: no limit, take() gives nothing. */
  constructor(perSec: number, burst: number) {
    this.#perSec = perSec
    this.#burst = burst
    this.#refillMs = perSec > 0 ? (burst / perSec) * 1000 : 0
  }

  /** Budgets held or still filling up (tests, metrics). */
  get size(): number {
    return this.#budgets.size
  }

  /** The bucket of `key` for one more session; undefined when there is no limit. */
  take(key: string, nowMs = performance.now()): TokenBucket | undefined {
    if (this.#perSec === 0) return undefined
    this.#forgetRefilled(nowMs)
    let budget = this.#budgets.get(key)
    if (budget === undefined) {
      budget = { bucket: new TokenBucket(this.#perSec, this.#burst, nowMs), sessions: 0, idleSinceMs: 0 }
      this.#budgets.set(key, budget)
    }
    if (budget.sessions++ === 0) this.#idle.delete(key)
    return budget.bucket
  }

  /** A session of `key` ended: once none is left, the budget fills up, then is forgotten. */
  release(key: string, nowMs = performance.now()): void {
    const budget = this.#budgets.get(key)
    if (budget === undefined || budget.sessions === 0) return
    if (--budget.sessions === 0) {
      budget.idleSinceMs = nowMs
      this.#idle.set(key, budget)
    }
    this.#forgetRefilled(nowMs)
  }

  #forgetRefilled(nowMs: number): void {
    for (const [key, budget] of this.#idle) {
      if (nowMs - budget.idleSinceMs < this.#refillMs)
        return this.#sweepAt(budget.idleSinceMs + this.#refillMs)
      this.#idle.delete(key)
      this.#budgets.delete(key)
    }
  }

  /** Arms the sweep for `atMs` (performance.now() time), unless it is armed already (it re-arms itself). */
  #sweepAt(atMs: number): void {
    if (this.#sweep !== undefined) return
    const sweep = (): void => {
      this.#sweep = undefined
      this.#forgetRefilled(performance.now())
    }
    this.#sweep = setTimeout(sweep, Math.max(0, atMs - performance.now())).unref()
  }
}
