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
 * that an idle session holds no function of its own for them. A throw out of
 * either is the owner's to catch: the v4 timer serves every session.
 */
export interface HeartbeatOwner {
  /** v4: time to send a ping. */
  pingDue(): void
  /** No pong (v4) or no packet (v3) in time. */
  pingTimedOut(): void
}

/**
 * The heartbeats of one engine's sessions. It owns the two phases of the v4
 * heartbeat (wait pingInterval, then pingTimeout for the pong), each one
 * timer for all of its sessions, armed only while the phase has sessions;
 * the engine makes one and starts each session's heartbeat from it.
 */
export class Heartbeats {
  readonly #times: HeartbeatTimes
  readonly #phases: PingPhases

  constructor(times: HeartbeatTimes) {
    this.#times = times
    this.#phases = {
      interval: new PingWaits(times.pingIntervalMs),
      timeout: new PingWaits(times.pingTimeoutMs),
    }
  }

  start(revision: Revision, owner: HeartbeatOwner): Heartbeat {
    return revision === 3 ? new ClientPings(this.#times, owner) : new ServerPings(this.#phases, owner)
  }
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

/**
 * v4: wait pingInterval, ping, wait pingTimeout for the pong. Each wait is an
 * entry in its phase's PingWaits, whose one timer serves every session of the
 * engine: an idle session holds no Timeout of its own.
 */
class ServerPings implements Heartbeat {
  readonly #owner: HeartbeatOwner
  readonly #phases: PingPhases
  /**
   * The wait this is in (the timeout phase's while a ping awaits its pong; none once stopped or
   * timed out), its neighbours there and when it ends (performance.now() ms): PingWaits' links.
   */
  waits: PingWaits | undefined = undefined
  previous: ServerPings | undefined = undefined
  next: ServerPings | undefined = undefined
  dueMs = 0

  constructor(phases: PingPhases, owner: HeartbeatOwner) {
    this.#owner = owner
    this.#phases = phases
    this.#phases.interval.add(this)
  }

  /** Its wait in `phase` ended (PingWaits): ping after the interval, time out after an unanswered ping. */
  due(phase: PingWaits): void {
    if (phase === this.#phases.timeout) return this.#owner.pingTimedOut()
    this.#phases.timeout.add(this)
    this.#owner.pingDue()
  }

  received(): void {
    // v4 liveness is the pong alone.
  }

  pong(): boolean {
    // Only a ping's own pong counts: not one read after stop() or after the ping timed out.
    if (this.waits === this.#phases.timeout) {
      this.waits.remove(this)
      this.#phases.interval.add(this)
    }
    return true
  }

  rearm(): void {
    // The ping cycle is the session's and carries on over the new transport.
  }

  stop(): void {
    this.waits?.remove(this)
  }
}

/** The two waits of the v4 heartbeat, of one engine's sessions (Heartbeats). */
interface PingPhases {
  readonly interval: PingWaits
  readonly timeout: PingWaits
}

/**
 * The sessions waiting in one phase of the v4 heartbeat, on one timer. Every
 * wait of a phase lasts as long, so the waits end in the order they began:
 * a list in that order needs a timer for its head only, armed while the list
 * is not empty (so a closed engine leaves none behind).
 *
 *   add() ─▶ [first ⇄ … ⇄ last] ─ due at first.dueMs ─▶ ServerPings.due()
 *                   └─ remove() from anywhere: a pong, a session that ends
 */
class PingWaits {
  readonly #durationMs: number
  #first: ServerPings | undefined
  #last: ServerPings | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(durationMs: number) {
    this.#durationMs = durationMs
  }

  add(pings: ServerPings): void {
    pings.waits = this
    pings.dueMs = performance.now() + this.#durationMs
    pings.previous = this.#last
    pings.next = undefined
    if (this.#last === undefined) this.#first = pings
    else this.#last.next = pings
    this.#last = pings
    if (this.#timer === undefined) this.#timer = setTimeout(this.#fire, this.#durationMs)
  }

  remove(pings: ServerPings): void {
    if (pings.waits !== this) return
    const { previous, next } = pings
    if (previous === undefined) this.#first = next
    else previous.next = next
    if (next === undefined) this.#last = previous
    else next.previous = previous
    pings.waits = pings.previous = pings.next = undefined
    if (this.#first === undefined) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
  }

  /** The head's time came (or nearly: a timer may fire a fraction of a ms early): end every wait due. */
  readonly #fire = (): void => {
    this.#timer = undefined
    const nowMs = performance.now()
    for (let first = this.#first; first !== undefined && first.dueMs <= nowMs; first = this.#first) {
      this.remove(first)
      first.due(this) // the session's calls are guarded (session.ts): a throw ends that session only
    }
    if (this.#first !== undefined && this.#timer === undefined)
      this.#timer = setTimeout(this.#fire, Math.max(1, Math.ceil(this.#first.dueMs - nowMs)))
  }
}
