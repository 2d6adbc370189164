import type { ConsumerStore } from './consumer-store.js'
import type { ControlMessage } from './control.js'
import { isAfter, parseCursor } from './cursor.js'
import type { Fanout } from './fanout.js'
import type { Hub } from './hub.js'
import type { NodeContext } from './node-context.js'
import type { ConsumerSink, Outbox } from './outbox.js'

/** A join or a leave, told to the node that holds the consumer (Membership.join / leave). */
export type RoomChange = Extract<ControlMessage, { type: 'join' | 'leave' }>

/** Most times a reconcile reads a consumer's rooms again because a change was told meanwhile. */
const REREADS = 3

/**
 * Keeps the rooms of the consumers this node holds in step with their
 * membership in Redis. Joins and leaves are told on the node's control
 * channel; while a consumer is still connecting they are held back until
 * the rooms it read from Redis are in place. After the subscriber lost its
 * connection, what was told meanwhile is lost: every consumer's rooms are
 * read again, and every room log from its cursor (reconcile; see
 * docs/ARCHITECTURE.md, Invariants, Handoff).
 */
export class RoomSync<S extends ConsumerSink> {
  readonly #hub: Hub<S>
  readonly #fanout: Fanout
  readonly #store: ConsumerStore
  readonly #context: NodeContext
  /** Consumers still connecting, with the changes told to them meanwhile. */
  readonly #connecting = new Map<Outbox<S>, RoomChange[]>()
  /** Changes told per consumer, so a reconcile knows its read may be older than one of them. */
  readonly #told = new WeakMap<Outbox<S>, number>()
  #reconciling: Promise<void> | undefined
  #reconcileAgain = false
  #stopped = false

  constructor(hub: Hub<S>, fanout: Fanout, store: ConsumerStore, context: NodeContext) {
    this.#hub = hub
    this.#fanout = fanout
    this.#store = store
    this.#context = context
  }

  /** Consumers whose joins and leaves are held (a leak check's reading). */
  get connectingSize(): number {
    return this.#connecting.size
  }

  /** The consumer is connecting: hold its joins and leaves until connected(). */
  connecting(outbox: Outbox<S>): void {
    this.#connecting.set(outbox, [])
  }

  /**
   * The consumer's rooms from Redis are in its outbox: unless it was released
   * meanwhile (then false), follow them, and apply the changes told since.
   */
  connected(outbox: Outbox<S>): boolean {
    const told = this.#connecting.get(outbox) ?? []
    this.#connecting.delete(outbox)
    if (!this.#hub.holds(outbox)) return false
    for (const room of outbox.rooms) this.#fanout.follow(room, outbox)
    for (const change of told) this.#check(outbox, change)
    return true
  }

  /** A join or leave arrived on the control channel. */
  told(change: RoomChange): void {
    const outbox = this.#hub.get(change.consumerId)
    if (!outbox) return // gone meanwhile: its cursors in Redis already say it all
    this.#told.set(outbox, (this.#told.get(outbox) ?? 0) + 1)
    const held = this.#connecting.get(outbox)
    if (held) held.push(change)
    else this.#check(outbox, change)
  }

  /**
   * The consumer's record was written again from its session after Redis
   * lost it (ConsumerStore.keepAlive): follow the rooms joined since the
   * loss, which no node was told of (the join found no node key).
   */
  restored(restored: Outbox): void {
    const outbox = this.#hub.get(restored.consumerId)
    if (outbox !== restored || this.#connecting.has(outbox)) return
    this.#store.readMembership(outbox.consumerId).then(
      ([holder, rooms]) => this.#follow(outbox, holder, rooms),
      (err: unknown) => this.#context.redisError(err, 'membership read failed'),
    )
  }

  /** Reconciles with Redis; asked again while it runs, does it once more after (a failover asks several times). */
  resync(): void {
    if (this.#stopped) return
    if (this.#reconciling) {
      this.#reconcileAgain = true
      return
    }
    this.#reconciling = this.#reconcile()
      .catch((err: unknown) => this.#context.redisError(err, 'reconcile failed'))
      .finally(() => {
        this.#reconciling = undefined
        if (!this.#reconcileAgain) return
        this.#reconcileAgain = false
        this.resync()
      })
  }

  stop(): void {
    this.#stopped = true
  }

  /**
   * Applies the notice at once (a publish right after an unsubscribe must
   * find the room left: README, The protocol), then follows what the
   * consumer's membership in Redis says of the room: the notices of two
   * producers' changes to one room may cross on their way (each is
   * published after its script), and these reads, on one connection (a
   * consumer's keys share a slot), come back in order, the last after the
   * last change.
   */
  #check(outbox: Outbox<S>, change: RoomChange): void {
    const { consumerId, room } = change
    this.#apply(outbox, change)
    this.#store.readRoom(consumerId, room).then(
      cursor => {
        if (!this.#hub.holds(outbox)) return
        if (cursor === null) return this.#apply(outbox, { type: 'leave', consumerId, room })
        const acked = outbox.cursors.acked(room)
        // Joined again at a newer head since it was left: it starts there, as a leave then a join would.
        if (acked && isAfter(parseCursor(cursor), acked))
          this.#apply(outbox, { type: 'leave', consumerId, room })
        this.#apply(outbox, { type: 'join', consumerId, room, cursor })
      },
      (err: unknown) => this.#context.redisError(err, 'membership read failed'),
    )
  }

  #apply(outbox: Outbox<S>, change: RoomChange): void {
    if (change.type === 'join') {
      if (outbox.hasRoom(change.room)) return
      outbox.addRoom(change.room, parseCursor(change.cursor))
      this.#fanout.follow(change.room, outbox)
    } else {
      outbox.removeRoom(change.room)
      this.#fanout.leave(change.room, outbox)
    }
  }

  /**
   * Every consumer's rooms from Redis, then every room log from its cursor,
   * even if the rooms of some consumers could not be read. A consumer whose
   * node key names another node was taken over meanwhile, and one that has
   * none was released elsewhere: its session closes, and the client's
   * reconnect makes a new record. One with neither node key nor rooms lost
   * its record (a Redis that restarted empty, a flush): it is written again
   * from the session (ConsumerStore.restore), which goes on.
   */
  async #reconcile(): Promise<void> {
    // A consumer still connecting reads its rooms itself, and its node key may not name this node yet.
    const connected = [...this.#hub.values()].filter(outbox => !this.#connecting.has(outbox))
    const reads = await Promise.allSettled(
      connected.map(async outbox => {
        const { consumerId } = outbox
        let told = this.#told.get(outbox)
        let [holder, rooms] = await this.#store.readMembership(consumerId)
        // A change told while reading may be newer than what was read: read again.
        for (let again = 0; again < REREADS && this.#told.get(outbox) !== told; again++) {
          told = this.#told.get(outbox)
          ;[holder, rooms] = await this.#store.readMembership(consumerId)
        }
        // Redis lost the record (no node key; no rooms, or only joins made since): the session
        // knows it and writes it again, keeping those joins, unless something was written
        // meanwhile (the ttl refresh restored it, another node's connect). Then: read the record.
        if (holder === null) {
          await this.#store.restore(outbox)
          ;[holder, rooms] = await this.#store.readMembership(consumerId)
        }
        this.#follow(outbox, holder, rooms)
      }),
    )
    this.#fanout.resyncAll()
    const failed = reads.find(read => read.status === 'rejected')
    if (failed) throw failed.reason
  }

  /**
   * Brings a held consumer's rooms in step with its record, as read: closes
   * its session if the record names another node or none (released
   * elsewhere, or lost and not written again).
   */
  #follow(outbox: Outbox<S>, holder: string | null, rooms: Record<string, string>): void {
    if (!this.#hub.holds(outbox)) return
    if (holder !== this.#store.nodeId) {
      outbox.sink?.close(holder === null ? 'session record lost in Redis' : 'taken over by another node')
      return
    }
    const { consumerId } = outbox
    for (const room of [...outbox.rooms])
      if (!(room in rooms)) this.#apply(outbox, { type: 'leave', consumerId, room })
    for (const [room, cursor] of Object.entries(rooms))
      if (!outbox.hasRoom(room)) this.#apply(outbox, { type: 'join', consumerId, room, cursor })
  }
}
