/** What a place is held by: one accepted handshake (then its session) of one consumer of one user. */
export interface UserSessionHolder {
  readonly userId: string
  readonly consumerId: string
}

/**
 * The consumer sessions each user holds on this node, for maxSessionsPerUser
 * (README, Limits and bad input). Counted per node, without Redis: a node
 * knows its own sessions exactly, and a crashed node's leave nothing behind.
 *
 * A user's count is its distinct consumer ids, each held by its accepted
 * handshakes and open sessions: a handshake of a consumer already held
 * replaces that session (the engine keeps one session per consumer id), so a
 * reconnect is never refused for the session it is about to replace.
 */
export class UserSessions<H extends UserSessionHolder> {
  /** 0: no limit, and nothing counted. */
  readonly #max: number
  /**
   * consumerId → the handshake or session holding it, or a Set of them while more than one
   * does (a handshake replacing a session): one entry in one table per session, not a Map
   * and a Set of its own (docs/performance.md, section 1). A consumer id belongs to one
   * user: it holds the user id (auth/token.ts, consumerIdOf).
   */
  readonly #holders = new Map<string, H | Set<H>>()
  /** userId → the consumer ids it holds here. */
  readonly #consumers = new Map<string, number>()

  constructor(maxPerUser: number) {
    this.#max = maxPerUser
  }

  /** Users holding a place now (a leak check's reading). */
  get size(): number {
    return this.#consumers.size
  }

  /** Holds a place for `holder`, unless its user has maxPerUser other consumers here: false then. */
  take(holder: H): boolean {
    if (this.#max === 0) return true
    const held = this.#holders.get(holder.consumerId)
    if (held instanceof Set) held.add(holder)
    else if (held !== undefined) {
      if (held !== holder) this.#holders.set(holder.consumerId, new Set([held, holder]))
    } else {
      const consumers = this.#consumers.get(holder.userId) ?? 0
      if (consumers >= this.#max) return false
      this.#consumers.set(holder.userId, consumers + 1)
      this.#holders.set(holder.consumerId, holder)
    }
    return true
  }

  /** Lets go of `holder`'s place; once more, or for a holder never taken, does nothing. */
  release(holder: H): void {
    const held = this.#holders.get(holder.consumerId)
    if (held instanceof Set) {
      // The last but one: the one left holds the place alone again.
      if (held.delete(holder) && held.size === 1)
        this.#holders.set(holder.consumerId, held.values().next().value!)
      return
    }
    if (held !== holder) return
    this.#holders.delete(holder.consumerId)
    const consumers = this.#consumers.get(holder.userId)! - 1
    if (consumers > 0) this.#consumers.set(holder.userId, consumers)
    else this.#consumers.delete(holder.userId)
  }
}
