import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Config } from '../config/defaults.js'
import { guard } from '../guard.js'
import type { Logger } from '../log.js'
import { userRoom } from '../redis/keys.js'
import { ConsumerStore, type TakenConsumer } from './consumer-store.js'
import { CursorFlush } from './cursor-flush.js'
import { decodeControl, isNotice } from './control.js'
import type { BrokerCore } from './core.js'
import { Fanout } from './fanout.js'
import { Handoff } from './handoff.js'
import { Hub } from './hub.js'
import { ACK_LATENCY_BUCKETS_SEC, DeliveryLatency, LatencyCounts } from './latency.js'
import { NodeContext, type NodeCounters } from './node-context.js'
import { Outbox, type ConsumerSink, type OutboxHost } from './outbox.js'
import { outboxHost } from './outbox-host.js'
import { answerRoomMembers, decodeQuestion } from './room-members.js'
import { RoomSync } from './room-sync.js'

export type { ConsumerSink } from './outbox.js'
export type { NodeCounters } from './node-context.js'

export type NodeConfig = Pick<
  Config,
  | 'batchMaxMessages'
  | 'batchMaxBytes'
  | 'consumerMaxQueue'
  | 'consumerMaxQueueBytes'
  | 'recentMaxMessages'
  | 'recentMaxBytesPerRoom'
  | 'recentMaxBytes'
  | 'consumerTtlSec'
  | 'replacedConsumerTtlSec'
  | 'cursorFlushMs'
  | 'takeoverWaitMs'
  | 'nodeTtlMs'
  | 'statsFlushMs'
  | 'ackTimeoutMs'
>

/** A handshake waiting for its consumer's takeover: the sink its session would deliver through. */
interface Handshake<S> {
  readonly sink: S
  /** Aborted when its client went away, or it was refused late. */
  readonly abandoned: { readonly aborted: boolean } | undefined
}

/**
 * One broker node: the consumers whose live sessions it holds, and the wiring
 * of the parts that serve them (docs/ARCHITECTURE.md, the module map):
 *
 *   Hub            the outboxes held, their sessions, nacks, ack timeouts (memory only)
 *   Fanout         room announcements to local members; their log reads
 *   ConsumerStore  the consumers' keys in Redis: take, commit, release
 *   CursorFlush    acknowledged cursors to the rooms' progress, for a takeover after a crash
 *   Handoff        takeover / kick / released between nodes
 *   RoomSync       joins and leaves told on the control channel; reconcile
 *
 * Transport-free: the gateway hands it sinks.
 */
export class BrokerNode<S extends ConsumerSink = ConsumerSink> {
  readonly id: string
  /** Name in the stats' `current`: host:port of its gateway, like the original. */
  readonly name: string
  readonly counters: NodeCounters

  /** Time from sending each batch to its ack (metrics). */
  readonly ackLatency = new LatencyCounts(ACK_LATENCY_BUCKETS_SEC)
  /** Time from each message being stored to its ack, per platform (metrics, node report). */
  readonly deliveryLatency = new DeliveryLatency()

  readonly #core: BrokerCore
  readonly #config: NodeConfig
  readonly #context: NodeContext
  readonly #hub: Hub<S>
  readonly #fanout: Fanout
  readonly #store: ConsumerStore
  readonly #cursors: CursorFlush
  readonly #handoff: Handoff<S>
  readonly #rooms: RoomSync<S>
  readonly #host: OutboxHost<S>
  readonly #timers: NodeJS.Timeout[] = []
  /** Outboxes still connecting, each with its connect's take and read (see #release). */
  readonly #connecting = new Map<Outbox<S>, Promise<void>>()
  /** Outboxes whose take Redis refused (an error, not a hang): their handshakes are refused. */
  readonly #untaken = new WeakSet<Outbox<S>>()
  /** The handshakes each connecting outbox serves: abandoned once every one of them is (see #take). */
  readonly #handshakes = new Map<Outbox<S>, Handshake<S>[]>()
  #stopped = false

  constructor(core: BrokerCore, config: NodeConfig, log: Logger, name = `${hostname()}:${process.pid}`) {
    this.#core = core
    this.#config = config
    this.id = `${name}:${randomBytes(4).toString('base64url')}`
    this.name = name
    const context = (this.#context = new NodeContext(log, () => core.redis.isReady()))
    this.counters = context.counters
    this.#hub = new Hub(config.ackTimeoutMs, context)
    this.#fanout = new Fanout(
      core.redis.pubsub,
      core.keys,
      core.log,
      {
        batchMaxMessages: config.batchMaxMessages,
        batchMaxBytes: config.batchMaxBytes,
        recentMessages: config.recentMaxMessages,
        recentBytesPerRoom: config.recentMaxBytesPerRoom,
        recentBytes: config.recentMaxBytes,
      },
      context,
    )
    this.#cursors = new CursorFlush(core, config, context)
    this.#store = new ConsumerStore(
      core,
      this.id,
      config,
      context,
      this.#cursors,
      () => this.#hub.values(),
      // Not while connecting: its take writes the record, and it reads its rooms itself.
      outbox => {
        const held = this.#hub.get(outbox.consumerId)
        return held === outbox && !this.#connecting.has(held)
      },
      outbox => this.#rooms.restored(outbox),
    )
    this.#handoff = new Handoff(
      this.id,
      core,
      this.#hub,
      (outbox, sink) => this.disconnect(outbox, sink),
      consumerId => this.#store.releasingConsumer(consumerId),
      context,
      config.takeoverWaitMs,
    )
    this.#rooms = new RoomSync(this.#hub, this.#fanout, this.#store, context)
    this.#host = outboxHost({
      config,
      context,
      core,
      fanout: this.#fanout,
      cursors: this.#cursors,
      ackLatency: this.ackLatency,
      deliveryLatency: this.deliveryLatency,
    })
  }

  /** Live consumers on this node: not those still being taken over, which have no session open yet. */
  get online(): number {
    let connecting = 0
    for (const outbox of this.#connecting.keys()) if (this.#hub.holds(outbox)) connecting++
    return this.#hub.size - connecting
  }

  /** Consumers this node is taking over: their handshakes wait for that take (Redis) before they open. */
  get takingOver(): number {
    return this.#connecting.size
  }

  get roomCount(): number {
    return this.#fanout.roomCount
  }

  /** Room announcements received, and those dropped as undecodable. */
  get announcements(): { readonly received: number; readonly dropped: number } {
    return { received: this.#fanout.announcements, dropped: this.#fanout.dropped }
  }

  /** Bytes of recent messages this node holds in memory for members that fall behind. */
  get recentBytes(): number {
    return this.#fanout.recentBytes
  }

  /** Messages waiting in this node's outboxes (not yet sent). */
  backlog(): number {
    return this.#hub.backlog()
  }

  /** Subscribes the control channel, marks the node alive, starts the timers. */
  async start(): Promise<void> {
    const { redis, keys, presence } = this.#core
    const { nodeTtlMs, statsFlushMs } = this.#config
    const control = keys.nodeChannel(this.id)
    const questions = keys.queries.channel
    redis.pubsub.onMessage(
      guard(this.#context.log, 'announcement', (channel: string, bytes: Buffer) => {
        if (channel === control) this.#onControl(bytes)
        else if (channel === questions) this.#onQuestion(bytes)
        else if (isNotice(bytes)) this.#onRoomNotice(bytes)
        else this.#fanout.announce(channel, bytes)
      }),
    )
    // What was published while the subscriber was away is gone: joins and leaves are
    // read again from Redis, and every room log from its cursor.
    redis.pubsub.onResubscribed(() => this.#rooms.resync())
    await Promise.all([redis.pubsub.subscribe(control), redis.pubsub.subscribe(questions)])
    await presence.touchNode(this.id, nodeTtlMs)
    this.#timers.push(
      this.#context.every(
        Math.max(100, Math.floor(nodeTtlMs / 3)),
        async () => {
          // Taken for dead meanwhile (cut off from Redis, or Redis stalled, past nodeTtlMs): a
          // `consumers` then may have dropped the presence of the sessions that lived on here.
          if (!(await presence.touchNode(this.id, nodeTtlMs))) await this.#store.keepAlive()
        },
        'node liveness refresh failed',
        // Its key's master answers: one stalled master elsewhere must not get this node taken for dead.
        () => redis.isReadyFor(keys.nodeAlive(this.id)),
      ),
      this.#context.every(
        statsFlushMs,
        () => this.flushStats(),
        'stats flush failed',
        () => redis.isReadyFor(keys.stats, keys.statsRooms, keys.statsNodes),
      ),
    )
    this.#hub.start()
    this.#store.start()
    this.#cursors.start()
  }

  /**
   * Whether a handshake of this consumer can be served now: Redis takes
   * commands on the consumer's keys (on a cluster, the master of its slot
   * answers: the take is one script there), or the consumer is live here
   * already. While Redis is down, new sessions are refused rather than left
   * waiting for it (and queued); so is one whose consumer is still being
   * taken over, since it would wait for that take, which waits for Redis.
   */
  canConnect(consumerId: string): boolean {
    const live = this.#hub.get(consumerId)
    const { redis, keys } = this.#core
    return (
      redis.isReadyFor(keys.consumer(consumerId).node) || (live !== undefined && !this.#connecting.has(live))
    )
  }

  /**
   * A consumer's handshake came in here. Takes the consumer over from wherever
   * it was, joins its user room, and starts delivering from its cursors to
   * `sink`. If the consumer is already live on this node, its outbox is
   * returned as it is: the new session gets it in attach(), once it opens;
   * if it is still being taken over, once that take is done (no session of
   * the consumer opens before it: docs/consumer-protocol.md §3).
   * `replaces`: a previous consumer id of the same browser (snapper.ws cookie).
   * `abandoned`: aborted when the handshake's client goes away; if that happens
   * (to every handshake waiting on this connect) before the take, nothing is
   * taken and no node is asked to let the consumer go: its live session there
   * stays. The caller disconnects the outbox all the same.
   * Undefined if Redis refused the take (an error: a Cluster that is down, a
   * connection lost): the node let the outbox go, and the handshake must not
   * open, since its session would get nothing of its rooms (try again later).
   */
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
   * what was read (see #release). Never rejects.
   */
  async #takeAndRead(outbox: Outbox<S>): Promise<void> {
    const { consumerId, userId } = outbox
    const ownRoom = userRoom(userId)
    try {
      // Heard before its head is read: a consumer at the head of its own room then reads nothing.
      const isListening = await this.#fanout.listen(ownRoom, outbox)
      const taken = await this.#take(outbox)
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
      // may have written for itself.
      if (!this.#hub.get(consumerId)) await this.#store.release(outbox)
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
  async #take(outbox: Outbox<S>): Promise<TakenConsumer | undefined> {
    const isAbandoned = (): boolean =>
      this.#handshakes.get(outbox)?.every(handshake => handshake.abandoned?.aborted) ?? false
    if (isAbandoned()) return undefined
    const taken = await this.#store.take(outbox, false)
    if (taken.isTaken) return taken
    const { holder } = taken
    if (isAbandoned()) return undefined
    const asked = await this.#handoff.takeOver(outbox.consumerId, holder)
    // Asked and released by now, or not answering: either way there is nothing to take for a client gone.
    if (isAbandoned()) return undefined
    const retaken = await this.#store.take(outbox, true)
    if (!retaken.isTaken) return undefined // evenIfHeld: not reached
    // Another node took the session meanwhile: it closes it at once. So does the holder asked
    // to release it: it may have released it and taken it again (a reconnect) before the take
    // above, and then no one else closes that session. A holder taken for dead is not asked: its
    // cursors are read from the rooms' progress, which its release would delete (a crash).
    const { previous } = retaken
    if (previous && previous !== this.id && (previous !== holder || asked))
      this.#handoff.kick(previous, outbox.consumerId)
    return retaken
  }

  /**
   * The consumer's session closed. Unless a newer session of the same consumer
   * took over, persist its cursors and its batch in flight, and release it.
   */
  disconnect(outbox: Outbox<S>, sink: S): Promise<void> {
    // A kick closes the sink, whose close handler starts the release: the kick then waits for that one.
    const releasing = this.#store.releasing(outbox)
    if (releasing) return releasing
    if (outbox.sink !== sink || !this.#hub.holds(outbox)) return Promise.resolve()
    return this.#release(outbox)
  }

  /**
   * The session of `sink` opened: deliver through it from now on (the batch in
   * flight again, same id). The engine has closed any older session of the
   * consumer. False if the outbox was released meanwhile: close the session.
   */
  attach(outbox: Outbox<S>, sink: S): boolean {
    return this.#hub.attach(outbox, sink)
  }

  /** The consumer acknowledged a batch; false if that id is not the batch in flight. */
  ack(outbox: Outbox<S>, batchId: unknown): boolean {
    return outbox.ack(batchId)
  }

  /** The consumer answered a batch with an error; false if that id is not the batch in flight. */
  nack(outbox: Outbox<S>, batchId: unknown): boolean {
    return this.#hub.nack(outbox, batchId)
  }

  /** Writes the cursors acknowledged since the last flush (CursorFlush.flushCursors). */
  flushCursors(): Promise<void> {
    return this.#cursors.flushCursors()
  }

  async flushStats(): Promise<void> {
    const { stats } = this.#core
    await Promise.all([stats.flush(), stats.report(this.name, this.online, this.deliveryLatency.total())])
  }

  /**
   * Closes every session (spread over `spreadMs` so they do not all reconnect
   * at once), then persists what is left and stops the timers. Redis stays
   * open: the caller quits it after the producer side is drained too.
   */
  async stop(spreadMs: number): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    this.#rooms.stop()
    // Come back at once: the closes are already spread, and another node can take the consumer.
    await this.#hub.closeAll('server shutdown', spreadMs, 0)
    // Sessions whose transport did not report the close are released here.
    for (const outbox of [...this.#hub.values()]) await this.#release(outbox)
    await this.#store.settled()
    for (const timer of this.#timers) clearInterval(timer)
    this.#hub.stop()
    this.#store.stop()
    this.#cursors.stop()
    await Promise.allSettled([this.flushCursors(), this.flushStats()])
    const { presence, stats } = this.#core
    await Promise.allSettled([presence.dropNode(this.id), stats.forget(this.name)])
  }

  /** Stops delivering to the outbox, then commits its cursors and batch in flight. */
  #release(outbox: Outbox<S>): Promise<void> {
    this.#detach(outbox)
    // Still connecting: its take may be on its way to Redis, and what the take reads (cursors, the
    // batch in flight) is not in the outbox yet. A release now could come after the take, and then
    // drop the in-flight record in its name; the connect releases the outbox once it has read them.
    return this.#connecting.get(outbox) ?? this.#store.release(outbox)
  }

  /** Takes the outbox out of the node: no more deliveries, no rooms followed. */
  #detach(outbox: Outbox<S>): void {
    this.#hub.remove(outbox)
    outbox.close()
    this.#fanout.leaveAll(outbox)
    // Listened to before its rooms were read: not among them if that read failed.
    this.#fanout.leave(userRoom(outbox.userId), outbox)
  }

  #onControl(bytes: Buffer): void {
    const message = decodeControl(bytes)
    if (!message) this.#context.log.warn('undecodable control message dropped')
    else if (message.type === 'released') this.#handoff.onReleased(message.consumerId)
    else if (message.type === 'kick') void this.#handoff.onKick(message.consumerId, message.byNode)
    else this.#rooms.told(message)
  }

  /** A leave told on the room's channel too (Membership.leave); any other notice there is not ours to follow. */
  #onRoomNotice(bytes: Buffer): void {
    const message = decodeControl(bytes)
    if (message?.type === 'leave') this.#rooms.told(message)
    else this.#context.log.warn('undecodable room notice dropped')
  }

  /** An operator asks every node who is in a room (room-members.ts): answer with this node's members. */
  #onQuestion(bytes: Buffer): void {
    const question = decodeQuestion(bytes)
    if (!question) return
    const { redis, keys } = this.#core
    const members = this.#fanout.members(question.room)
    answerRoomMembers(redis.commands, keys, this, question.queryId, members).catch((err: unknown) =>
      this.#context.redisError(err, 'room members answer failed'),
    )
  }
}
