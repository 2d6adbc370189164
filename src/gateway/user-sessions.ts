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
  /** userId → consumerId → the handshakes and sessions holding it. */
  readonly #byUser = new Map<string, Map<string, Set<H>>>()

  constructor(maxPerUser: number) {
    this.#max = maxPerUser
  }

  /** Users holding a place now (a leak check's reading). */
  get size(): number {
    return this.#byUser.size
  }

  /** Holds a place for `holder`, unless its user has maxPerUser other consumers here: false then. */
  take(holder: H): boolean {
    if (this.#max === 0) return true
    let consumers = this.#byUser.get(holder.userId)
    const holders = consumers?.get(holder.consumerId)
    if (holders !== undefined) {
      holders.add(holder)
      return true
    }
    if (consumers === undefined) this.#byUser.set(holder.userId, (consumers = new Map()))
    else if (consumers.size >= this.#max) return false
    consumers.set(holder.consumerId, new Set([holder]))
    return true
  }

  /** Lets go of `holder`'s place; once more, or for a holder never taken, does nothing. */
  release(holder: H): void {
    const consumers = this.#byUser.get(holder.userId)
    const holders = consumers?.get(holder.consumerId)
    if (consumers === undefined || holders === undefined || !holders.delete(holder)) return
    if (holders.size > 0) return
    consumers.delete(holder.consumerId)
    if (consumers.size === 0) this.#byUser.delete(holder.userId)
  }
}
