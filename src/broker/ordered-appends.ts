import { setTimeout as sleep } from 'node:timers/promises'

/**
 * What room_append-4n.lua answered: 1 stored, 0 stored before (a call sent
 * again), -1 refused because a call it must follow is not stored yet.
 */
export type AppendStatus = -1 | 0 | 1

/**
 * Sends one script call naming, for each of its rooms, the call it must
 * follow there (`afterIn(room)`, 0: none).
 */
export type SendCall = (afterIn: (room: string) => number) => Promise<AppendStatus>

/** Before a call that failed or was refused goes again, in ms: no busy loop while a failover lasts. */
const RETRY_MS = 100

/**
 * Appends that reach each room's log in the order they were made, where the
 * client may send a call again out of order, and stored in the end though
 * the client gave up on them.
 *
 * On a Redis Cluster, ioredis retries a pipeline whose master died from a
 * queue of its own (every 100 ms, 16 times at most, then the calls fail)
 * while later calls go to the promoted replica as soon as the slot map names
 * it: a later append could be stored first. So a call names, in each of its
 * rooms, the previous call of this writer there while that one is not
 * settled (`after`), and room_append refuses it until all those are stored.
 * A call refused, or failed for a reason that passes (the connection, the
 * cluster's routing), goes again once each call before it is settled or sent
 * again, until stored: calls are numbered, so one that had run is not stored
 * twice. A call that throws as it is made (before anything is sent) fails at
 * once: it would throw the same way every time.
 *
 *   call ─▶ send(after) ─▶ stored ──────────────────────────────▶ settled
 *               ▲   └────▶ refused, or failed and `isPassing`
 *               │              │ RETRY_MS, then each call before it
 *               └──────────────┘ settled or sent again
 */
export class OrderedAppends {
  /** The last call of each room that is not settled. */
  readonly #last = new Map<string, Link>()
  readonly #isPassing: (err: unknown) => boolean

  constructor(isPassing: (err: unknown) => boolean) {
    this.#isPassing = isPassing
  }

  /**
   * Sends call number `call` to `rooms` (any name of each: its log key) until
   * it is stored; rejects once it failed for good. The first send goes before
   * this returns.
   */
  async append(rooms: readonly string[], call: number, send: SendCall): Promise<void> {
    const links = new Map<string, Link>()
    for (const room of rooms) {
      if (links.has(room)) continue // a room twice in one call follows one call before it
      const link = new Link(call, this.#last.get(room))
      links.set(room, link)
      this.#last.set(room, link)
    }
    const afterIn = (room: string): number => links.get(room)?.after() ?? 0
    try {
      for (;;) {
        for (const link of links.values()) link.sent()
        // Outside the try: a call that throws before it is sent is a bug in making it, and fails for good.
        const status = send(afterIn)
        try {
          if ((await status) !== -1) return
        } catch (err) {
          if (!this.#isPassing(err)) throw err
        }
        const before = [...links.values()].map(link => ({ link: link.before, sends: link.before?.sends }))
        await sleep(RETRY_MS)
        for (const { link, sends } of before)
          while (link && !link.isSettled && link.sends === sends) await link.changed()
      }
    } finally {
      for (const [room, link] of links) {
        link.settle()
        if (this.#last.get(room) === link) this.#last.delete(room)
      }
    }
  }

  /** Rooms with a call not settled (for tests: the map empties). */
  get pendingRooms(): number {
    return this.#last.size
  }
}

/** One call in its room's line. */
class Link {
  readonly call: number
  /** The room's call before this one, while this one is not settled. */
  before: Link | undefined
  /** How often it was sent (the calls behind a refused one wait for the next). */
  sends = 0
  /** Stored, or failed for good. */
  isSettled = false
  #wake: (() => void) | undefined
  #changed: Promise<void> | undefined

  constructor(call: number, before: Link | undefined) {
    this.call = call
    this.before = before
  }

  /** The call this one must follow if sent now: the one before it, until that one is settled. */
  after(): number {
    const before = this.before
    return before && !before.isSettled ? before.call : 0
  }

  sent(): void {
    this.sends++
    this.#notify()
  }

  settle(): void {
    this.isSettled = true
    this.before = undefined // nothing behind a settled call is needed any more
    this.#notify()
  }

  /** Resolves when this call is next sent or settled. */
  changed(): Promise<void> {
    return (this.#changed ??= new Promise(resolve => (this.#wake = resolve)))
  }

  #notify(): void {
    this.#wake?.()
    this.#wake = undefined
    this.#changed = undefined
  }
}
