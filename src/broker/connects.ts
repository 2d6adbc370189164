import { userRoom } from '../redis/keys.js'
import { isRefusedUnrun } from '../redis/script-request.js'
import type { ConsumerStore, HeldConsumer, TakenConsumer } from './consumer-store.js'
import type { BrokerCore } from './core.js'
import type { Fanout } from './fanout.js'
import type { Handoff } from './handoff.js'
import type { Hub } from './hub.js'
import type { NodeContext } from './node-context.js'
import { Outbox, type ConsumerSink, type OutboxHost } from './outbox.js'
import type { RoomSync } from './room-sync.js'

/** A handshake waiting for its consumer's takeover: the sink its session would deliver through. */
interface Handshake<S> {
  readonly sink: S
  /** Aborted when its client went away, or it was refused late. */
  readonly abandoned: { readonly aborted: boolean } | undefined
}

/** The parts of a node a connect works with, by name (BrokerNode wires them). */
export interface ConnectsDeps<S extends ConsumerSink> {
  /** The node's id: a take names it in Redis as the consumer's holder. */
  readonly nodeId: string
  readonly core: Pick<BrokerCore, 'redis' | 'keys' | 'stats'>
  /** The outboxes held here: a connect adds its new one, or finds the live one. */
  readonly hub: Hub<S>
  /** Where a new outbox listens to its own room. */
  readonly fanout: Fanout
  /** The consumers' keys in Redis: take, read progress, release. */
  readonly store: ConsumerStore
  /** Asks the node that holds the consumer to release it first. */
  readonly handoff: Handoff<S>
  /** Told when an outbox starts connecting and when it has connected. */
  readonly rooms: RoomSync<S>
  /** What each new outbox asks of its node. */
  readonly host: OutboxHost<S>
  /** Takes an outbox out of the node (no deliveries, no rooms followed), without releasing it. */
  readonly detach: (outbox: Outbox<S>) => void
  readonly context: NodeContext
}

/** Whether a connect's take may have taken the consumer in Redis: then a connect that fails releases it there. */
interface TakeAttempt {
  mayHaveTaken: boolean
}

/**
 * A handshake's connect: from a consumer id to an outbox that delivers.
 *
 *   handshake ─▶ canConnect? ─▶ connect ─┬─ live here: that outbox (or, still connecting, its take)
 *                                        └─ new outbox: listen to its own room ─▶ #take (Handoff if
 *                                           another node holds it) ─▶ read its rooms and batch in
 *                                           flight ─▶ connected: deliver to its newest handshake
 *
 * It owns the outboxes still connecting and the handshakes that wait on each
 * take, which the node reads (online, #release) but never writes. Its own
 * module because it is one flow, measured on its own (connects/s), apart from
 * the node's life (start, stop, timers, control channel). Its invariants:
 * docs/ARCHITECTURE.md, Invariants, Handoff.
 */
export class Connects<S extends ConsumerSink> {
  readonly #nodeId: string
  readonly #core: Pick<BrokerCore, 'redis' | 'keys' | 'stats'>
  readonly #hub: Hub<S>
  readonly #fanout: Fanout
  readonly #store: ConsumerStore
  readonly #handoff: Handoff<S>
  readonly #rooms: RoomSync<S>
  readonly #host: OutboxHost<S>
  readonly #detach: (outbox: Outbox<S>) => void
  readonly #context: NodeContext
  /** Outboxes still connecting, each with its connect's take and read (see BrokerNode's #release). */
  readonly #connecting = new Map<Outbox<S>, Promise<void>>()
  /** Outboxes whose take Redis refused (an error, not a hang): their handshakes are refused. */
  readonly #untaken = new WeakSet<Outbox<S>>()
  /** The handshakes each connecting outbox serves: abandoned once every one of them is (see #take). */
  readonly #handshakes = new Map<Outbox<S>, Handshake<S>[]>()

  constructor(deps: ConnectsDeps<S>) {
    this.#nodeId = deps.nodeId
    this.#core = deps.core
    this.#hub = deps.hub
    this.#fanout = deps.fanout
    this.#store = deps.store
    this.#handoff = deps.handoff
    this.#rooms = deps.rooms
    this.#host = deps.host
    this.#detach = deps.detach
    this.#context = deps.context
  }

  /** Outboxes connecting: consumers this node is taking over. */
  get size(): number {
    return this.#connecting.size
  }

  /** Outboxes connecting that the hub still holds: no session has opened on them yet. */
  get held(): number {
    let held = 0
    for (const outbox of this.#connecting.keys()) if (this.#hub.holds(outbox)) held++
    return held
  }

  /** Outboxes whose handshakes are counted (a leak check's reading). */
  get handshakes(): number {
    return this.#handshakes.size
  }

  isConnecting(outbox: Outbox<S>): boolean {
    return this.#connecting.has(outbox)
  }

  /** The outbox's connect under way (its take and read), if any; never rejects. */
  connecting(outbox: Outbox<S>): Promise<void> | undefined {
    return this.#connecting.get(outbox)
  }

  /** BrokerNode.canConnect. */
  canConnect(consumerId: string): boolean {
    const live = this.#hub.get(consumerId)
    const { redis, keys } = this.#core
    return (
      redis.isReadyFor(keys.consumer(consumerId).node) || (live !== undefined && !this.#connecting.has(live))
    )
  }

  /** BrokerNode.connect. */
  async connect(
    consumerId: string,
    userId: string,
    sink: S,
    replaces?: string,
    abandoned?: { readonly aborted: boolean },
  ): Promise<Outbox<S> | undefined> {
    // Not `live.sink = sink`: two handshakes of one consumer open in any order, and the engine
    // keeps the session that opens last, so only its open may claim the outbox.
    const live = this.#hub.get(consumerId)
    if (live) {
      const connecting = this.#connecting.get(live)
      if (connecting === undefined) return live
      this.#handshakes.get(live)?.push({ sink, abandoned }) // its take is this handshake's too
      await connecting
      return this.#untaken.has(live) ? undefined : live
    }
    const outbox = new Outbox(this.#host, consumerId, userId)
    outbox.sink = sink
    this.#hub.add(outbox)
    this.#rooms.connecting(outbox)
    const ownRoom = userRoom(userId)
    this.#core.stats.connected()
    this.#core.stats.joined(ownRoom)

    if (replaces && replaces !== consumerId) this.#store.weaken(replaces)
    this.#handshakes.set(outbox, [{ sink, abandoned }])
    const connecting = this.#takeAndRead(outbox)
    this.#connecting.set(outbox, connecting)
    try {
      await connecting
    } finally {
      this.#connecting.delete(outbox)
      this.#handshakes.delete(outbox)
    }
    return this.#untaken.has(outbox) ? undefined : outbox
  }

  /**
   * Takes the consumer for the new outbox and reads where it stands into it;
   * then delivers, or, if the outbox was released meanwhile, releases it with
   * what was read (see BrokerNode's #release). Never rejects.
   */
  async #takeAndRead(outbox: Outbox<S>): Promise<void> {
    const { consumerId, userId } = outbox
    const ownRoom = userRoom(userId)
    const attempt: TakeAttempt = { mayHaveTaken: false }
    try {
      // Heard before its head is read: a consumer at the head of its own room then reads nothing.
      const isListening = await this.#fanout.listen(ownRoom, outbox)
      const taken = await this.#take(outbox, attempt)
      if (taken) {
        const { previous, rooms, inflight, ownHead } = taken
        if (isListening) this.#fanout.anchor(ownRoom, ownHead)
        // Not released by the node that held it (a crash): what it acknowledged since is in the rooms' progress.
        if (previous) await this.#store.readProgress(outbox, rooms)
        for (const [room, cursor] of rooms) outbox.addRoom(room, cursor)
        if (inflight) await this.#store.restoreInflight(outbox, inflight)
      }
    } catch (err) {
      this.#context.redisError(err, 'consumer connect failed')
      // Not taken: a session opened now would get nothing of its rooms, not even once Redis answers
      // again. Let go at once (below); its handshakes are refused and come back.
      this.#untaken.add(outbox)
      if (this.#hub.holds(outbox)) this.#detach(outbox)
    }
    if (!this.#rooms.connected(outbox)) {
      // Released while connecting (a kick, a close, a stop): commit what was read, in this node's
      // name; it touches only what names this node, which a newer connect of the consumer here
      // may have written for itself. A take refused unrun wrote nothing to commit: the handshake
      // is refused now, not after a release that would wait out the same refusal.
      if (this.#hub.get(consumerId)) return
      if (attempt.mayHaveTaken) await this.#store.release(outbox)
      else this.#store.forget(outbox)
      return
    }
    // Until a session opens, the outbox is its newest handshake's that still waits for it: the one
    // that the abandon of an earlier handshake (gone, or late) must not release under it.
    const waiting = this.#handshakes.get(outbox)?.findLast(handshake => !handshake.abandoned?.aborted)
    if (waiting) outbox.sink = waiting.sink
    outbox.resend()
  }

  /**
   * Takes the consumer for this node, from the node holding it if any: that
   * one is asked to release it first (Handoff). Undefined if every handshake
   * of the outbox was abandoned before: a client gone must not cut short the
   * consumer's live session elsewhere, whose client would come back for nothing.
   */
  async #take(outbox: Outbox<S>, attempt: TakeAttempt): Promise<TakenConsumer | undefined> {
    const isAbandoned = (): boolean =>
      this.#handshakes.get(outbox)?.every(handshake => handshake.abandoned?.aborted) ?? false
    const take = async (evenIfHeld: boolean): Promise<TakenConsumer | HeldConsumer> => {
      attempt.mayHaveTaken = true // until its answer says otherwise: a lost reply may hide a take that ran
      try {
        const taken = await this.#store.take(outbox, evenIfHeld)
        attempt.mayHaveTaken = taken.isTaken // held elsewhere: nothing changed
        return taken
      } catch (err) {
        if (isRefusedUnrun(err)) attempt.mayHaveTaken = false
        throw err
      }
    }
    if (isAbandoned()) return undefined
    const taken = await take(false)
    if (taken.isTaken) return taken
    const { holder } = taken
    if (isAbandoned()) return undefined
    const asked = await this.#handoff.takeOver(outbox.consumerId, holder)
    // Asked and released by now, or not answering: either way there is nothing to take for a client gone.
    if (isAbandoned()) return undefined
    const retaken = await take(true)
    if (!retaken.isTaken) return undefined // evenIfHeld: not reached
    // Another node took the session meanwhile: it closes it at once. So does the holder asked
    // to release it: it may have released it and taken it again (a reconnect) before the take
    // above, and then no one else closes that session. A holder taken for dead is not asked: its
    // cursors are read from the rooms' progress, which its release would delete (a crash).
    const { previous } = retaken
    if (previous && previous !== this.#nodeId && (previous !== holder || asked))
      this.#handoff.kick(previous, outbox.consumerId)
    return retaken
  }
}
