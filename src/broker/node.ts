import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Config } from '../config/defaults.js'
import { guard } from '../guard.js'
import type { Logger } from '../log.js'
import { userRoom } from '../redis/keys.js'
import { Connects } from './connects.js'
import { ConsumerStore } from './consumer-store.js'
import { CursorFlush } from './cursor-flush.js'
import { decodeControl, isNotice } from './control.js'
import type { BrokerCore } from './core.js'
import { Fanout } from './fanout.js'
import { Handoff } from './handoff.js'
import { Hub } from './hub.js'
import { ACK_LATENCY_BUCKETS_SEC, DeliveryLatency, LatencyCounts } from './latency.js'
import { NodeContext, type NodeCounters } from './node-context.js'
import type { ConsumerSink, Outbox } from './outbox.js'
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
  | 'logMaxFailuresPerSec'
>

/**
 * One broker node: the consumers whose live sessions it holds, and the wiring
 * of the parts that serve them (docs/ARCHITECTURE.md, the module map):
 *
 *   Hub            the outboxes held, their sessions, nacks, ack timeouts (memory only)
 *   Fanout         room announcements to local members; their log reads
 *   ConsumerStore  the consumers' keys in Redis: take, commit, release
 *   CursorFlush    acknowledged cursors to the rooms' progress, for a takeover after a crash
 *   Handoff        takeover / kick / released between nodes
 *   Connects       a handshake's connect: take the consumer (through Handoff), read its rooms
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
  readonly #connects: Connects<S>
  readonly #timers: NodeJS.Timeout[] = []
  #stopped = false

  constructor(core: BrokerCore, config: NodeConfig, log: Logger, name = `${hostname()}:${process.pid}`) {
    this.#core = core
    this.#config = config
    this.id = `${name}:${randomBytes(4).toString('base64url')}`
    this.name = name
    const context = (this.#context = new NodeContext(log, config.logMaxFailuresPerSec, () =>
      core.redis.isReady(),
    ))
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
    this.#store = new ConsumerStore({
      core,
      nodeId: this.id,
      config,
      context,
      cursors: this.#cursors,
      live: () => this.#hub.values(),
      // Not while connecting: its take writes the record, and it reads its rooms itself.
      holds: outbox => {
        const held = this.#hub.get(outbox.consumerId)
        return held === outbox && !this.#connects.isConnecting(held)
      },
      restored: outbox => this.#rooms.restored(outbox),
    })
    this.#handoff = new Handoff({
      nodeId: this.id,
      core,
      hub: this.#hub,
      disconnect: (outbox, sink) => this.disconnect(outbox, sink),
      releasing: consumerId => this.#store.releasingConsumer(consumerId),
      context,
      takeoverWaitMs: config.takeoverWaitMs,
    })
    this.#rooms = new RoomSync(this.#hub, this.#fanout, this.#store, context)
    // Every outbox is made by a connect (Connects), which hands it this host.
    const host = outboxHost<S>({
      config,
      context,
      core,
      fanout: this.#fanout,
      cursors: this.#cursors,
      ackLatency: this.ackLatency,
      deliveryLatency: this.deliveryLatency,
    })
    this.#connects = new Connects({
      nodeId: this.id,
      core,
      hub: this.#hub,
      fanout: this.#fanout,
      store: this.#store,
      handoff: this.#handoff,
      rooms: this.#rooms,
      host,
      detach: outbox => this.#detach(outbox),
      context,
    })
  }

  /** Live consumers on this node: not those still being taken over, which have no session open yet. */
  get online(): number {
    return this.#hub.size - this.#connects.held
  }

  /** Consumers this node is taking over: their handshakes wait for that take (Redis) before they open. */
  get takingOver(): number {
    return this.#connects.size
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

  /**
   * What the node holds per consumer and per room, by structure: each back to
   * 0 once its clients are gone (test/e2e/churn-leaks.test.ts).
   */
  footprint(): Record<string, number> {
    const releases = this.#store.releases
    return {
      outboxes: this.#hub.size,
      connecting: this.#connects.size,
      connectHandshakes: this.#connects.handshakes,
      takeovers: this.#handoff.size,
      roomChangesHeld: this.#rooms.connectingSize,
      releasingOutboxes: releases.outboxes,
      releasingConsumers: releases.consumers,
      rooms: this.#fanout.roomCount,
      roomChannels: this.#fanout.sizes.channels,
      roomReads: this.#fanout.sizes.reads,
      cursorsChanged: this.#cursors.changed,
    }
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
    return this.#connects.canConnect(consumerId)
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
  connect(
    consumerId: string,
    userId: string,
    sink: S,
    replaces?: string,
    abandoned?: { readonly aborted: boolean },
  ): Promise<Outbox<S> | undefined> {
    return this.#connects.connect(consumerId, userId, sink, replaces, abandoned)
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
    return this.#connects.connecting(outbox) ?? this.#store.release(outbox)
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
