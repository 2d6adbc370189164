import type { Revision } from './packet.js'

/**
 * The Engine.IO heartbeat, which runs the other way round in the two
 * revisions (docs/consumer-protocol.md §6):
 *
 *   v3  client: 2 ──▶ server: 3 at once      silence > pingInterval + pingTimeout ⇒ timeout
 *   v4  server: 2 every pingInterval ──▶ client: 3 within pingTimeout, else ⇒ timeout
 *
 * The timers belong to the session, not to a transport, so they run on
 * across the polling → websocket upgrade (engine.io 6 drops the v3 timer
 * there and never re-arms it; we must not).
 */
export interface Heartbeat {
  /** Any packet from the client (v3: proof of life). */
  received(): void
  /** A `3` from the client; false if this revision does not expect one. */
  pong(): boolean
  /** The session switched transports. */
  rearm(): void
  stop(): void
}

export interface HeartbeatTimes {
  readonly pingIntervalMs: number
  readonly pingTimeoutMs: number
}

/**
 * What the heartbeat's timers call (the session): methods, not closures, so
 * that an idle session holds no function of its own for them.
 */
export interface HeartbeatOwner {
  /** v4: time to send a ping. */
  pingDue(): void
  /** No pong (v4) or no packet (v3) in time. */
  pingTimedOut(): void
}

export function startHeartbeat(revision: Revision, times: HeartbeatTimes, owner: HeartbeatOwner): Heartbeat {
  return revision === 3 ? new ClientPings(times, owner) : new ServerPings(times, owner)
}

const timeOut = (owner: HeartbeatOwner): void => owner.pingTimedOut()

/** v3: one timer, refreshed (not reallocated) on every packet. */
class ClientPings implements Heartbeat {
  readonly #timer: NodeJS.Timeout

  constructor(times: HeartbeatTimes, owner: HeartbeatOwner) {
    this.#timer = setTimeout(timeOut, times.pingIntervalMs + times.pingTimeoutMs, owner)
  }

  received(): void {
    this.#timer.refresh()
  }

  pong(): boolean {
    return false
  }

  rearm(): void {
    this.#timer.refresh()
  }

  stop(): void {
    clearTimeout(this.#timer)
  }
}

/** v4: wait pingInterval, ping, wait pingTimeout for the pong; a new timer per phase (one per interval). */
class ServerPings implements Heartbeat {
  readonly #times: HeartbeatTimes
  readonly #owner: HeartbeatOwner
  #timer: NodeJS.Timeout
  #isAwaitingPong = false

  constructor(times: HeartbeatTimes, owner: HeartbeatOwner) {
    this.#times = times
    this.#owner = owner
    this.#timer = setTimeout(ServerPings.#sendPing, times.pingIntervalMs, this)
  }

  static #sendPing(pings: ServerPings): void {
    pings.#isAwaitingPong = true
    pings.#timer = setTimeout(timeOut, pings.#times.pingTimeoutMs, pings.#owner)
    pings.#owner.pingDue()
  }

  received(): void {
    // v4 liveness is the pong alone.
  }

  pong(): boolean {
    if (this.#isAwaitingPong) {
      this.#isAwaitingPong = false
      clearTimeout(this.#timer)
      this.#timer = setTimeout(ServerPings.#sendPing, this.#times.pingIntervalMs, this)
    }
    return true
  }

  rearm(): void {
    // The ping cycle is the session's and carries on over the new transport.
  }

  stop(): void {
    clearTimeout(this.#timer)
  }
}
