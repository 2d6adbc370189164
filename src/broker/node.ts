import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Config } from '../config/defaults.js'
import type { Logger } from '../log.js'
import { userRoom } from '../redis/keys.js'
import { BatchIds, makeBatch, type Batch, type Entry } from './batch.js'
import type { BrokerCore } from './core.js'
import { decodeControl, type ControlMessage } from './control.js'
import { formatCursor, isAfter, isNext, parseCursor, type Cursor } from './cursor.js'
import { Fanout } from './fanout.js'
import { Outbox, type OutboxHost } from './outbox.js'
import type { LogEntry } from './room-log.js'
import { forgetNode, reportNode } from './stats.js'

/** Longest a connecting consumer waits for the node that held it to persist its cursors, in ms. */
const TAKEOVER_WAIT_MS = 1000
/**
 * Recent messages kept in memory per room for members that fall behind (a burst
 * larger than their queue) or (re)join: as many as two full queues, 4 MiB per
 * room, 64 MiB for all rooms. Beyond, they read the room log in Redis.
 */
const RECENT_BYTES_PER_ROOM = 4 << 20
const RECENT_BYTES = 64 << 20

export type NodeConfig = Pick<
  Config,
  | 'batchMaxMessages'
  | 'batchMaxBytes'
  | 'consumerMaxQueue'
  | 'consumerTtlSec'
  | 'replacedConsumerTtlSec'
  | 'cursorFlushMs'
  | 'nodeTtlMs'
  | 'statsFlushMs'
  | 'ackTimeoutMs'
>

/** Where a node's batches go: the consumer's live session, adapted by the gateway. */
export interface ConsumerSink {
  send(batch: Batch): void
  close(reason: string): void
}

/** Counters for /metrics. */
export interface NodeCounters {
  batchesSent: number
  messagesAcked: number
  logReads: number
  logReadErrors: number
  cursorCommits: number
  redisErrors: number
  ackTimeouts: number
  kicks: number
}

/**
 * One broker node: the consumers whose sessions it holds, their outboxes, the
 * node-local fan-out, and the timers that persist cursors, refresh liveness
 * and write stats. Transport-free: the gateway hands it sinks.
 */
export class BrokerNode implements OutboxHost {
  readonly id: string
  /** Name in the stats' `current`: host:port of its gateway, like the original. */
  readonly name: string
  readonly batchMaxMessages: number
  readonly batchMaxBytes: number
  readonly maxQueue: number
  readonly counters: NodeCounters = {
    batchesSent: 0,
    messagesAcked: 0,
    logReads: 0,
    logReadErrors: 0,
    cursorCommits: 0,
    redisErrors: 0,
    ackTimeouts: 0,
    kicks: 0,
  }

  /** Called with the time from sending a batch to its ack, in ms (the metrics histogram). */
  onAck: ((latencyMs: number) => void) | undefined

  readonly #core: BrokerCore
  readonly #config: NodeConfig
  readonly #log: Logger
  readonly #fanout: Fanout
  readonly #batchIds = new BatchIds()
  readonly #consumers = new Map<string, Outbox>()
  readonly #connecting = new Map<Outbox, ControlMessage[]>()
  readonly #changed = new Set<Outbox>()
  readonly #reads = new Map<string, Promise<readonly LogEntry[]>>()
  /** Releases under way, by outbox: a second disconnect of one returns its promise. */
  readonly #releases = new Map<Outbox, Promise<void>>()
  /** Consumers this node is taking over, waiting for the old node's `released`. */
  readonly #takeovers = new Map<string, () => void>()
  readonly #timers: NodeJS.Timeout[] = []
  #stopped = false
  #reconciling: Promise<void> | undefined
  #reconcileAgain = false
  /** Joins and leaves told per consumer, so a reconcile knows its read may be older than one of them. */
  readonly #told = new WeakMap<Outbox, number>()

  constructor(core: BrokerCore, config: NodeConfig, log: Logger, name = `${hostname()}:${process.pid}`) {
    this.#core = core
    this.#config = config
    this.#log = log
    this.id = `${name}:${randomBytes(4).toString('base64url')}`
    this.name = name
    this.batchMaxMessages = config.batchMaxMessages
    this.batchMaxBytes = config.batchMaxBytes
    this.maxQueue = config.consumerMaxQueue
    this.#fanout = new Fanout(
      core.redis.pubsub,
      core.keys,
      {
        batchMaxMessages: config.batchMaxMessages,
        batchMaxBytes: config.batchMaxBytes,
        recentMessages: 2 * config.consumerMaxQueue,
        recentBytesPerRoom: RECENT_BYTES_PER_ROOM,
        recentBytes: RECENT_BYTES,
      },
      log,
    )
  }

  /** Live consumers on this node. */
  get online(): number {
    return this.#consumers.size
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
    let queued = 0
    for (const outbox of this.#consumers.values()) queued += outbox.queued
    return queued
  }

  /** Subscribes the control channel, marks the node alive, starts the timers. */
  async start(): Promise<void> {
    const { redis, keys, presence } = this.#core
    const { pubsub } = redis
    const control = keys.nodeChannel(this.id)
    pubsub.onMessage((channel, bytes) => {
      if (channel === control) this.#onControl(bytes)
      else this.#fanout.announce(channel, bytes)
    })
    // What was published while the subscriber was away is gone: joins and leaves are
    // read again from Redis, and every room log from its cursor.
    pubsub.onResubscribed(() => this.#resync())
    await pubsub.subscribe(control)
    await presence.touchNode(this.id, this.#config.nodeTtlMs)

    const every = (ms: number, task: () => Promise<unknown> | void): void => {
      const timer = setInterval(() => {
        Promise.resolve(task()).catch((err: unknown) => this.#redisError(err, 'periodic task failed'))
      }, ms)
      timer.unref()
      this.#timers.push(timer)
    }
    every(this.#config.cursorFlushMs, () => this.flushCursors())
    every(Math.max(100, Math.floor(this.#config.nodeTtlMs / 3)), () =>
      presence.touchNode(this.id, this.#config.nodeTtlMs),
    )
    every(this.#config.statsFlushMs, () => this.flushStats())
    every(1000, () => this.#checkAckTimeouts())
    every(
      Math.max(1000, (Math.min(this.#config.consumerTtlSec, this.#config.replacedConsumerTtlSec) * 1000) / 3),
      () => this.#keepConsumersAlive(),
    )
  }

  /**
   * A consumer's handshake came in here. Takes the consumer over from wherever
   * it was, joins its user room, and starts delivering from its cursors to
   * `sink`. If the consumer is already live on this node, its outbox is
   * returned as it is: the new session gets it in attach(), once it opens.
   * `replaces`: a previous consumer id of the same browser (snapper.ws cookie).
   */
  async connect(consumerId: string, userId: string, sink: ConsumerSink, replaces?: string): Promise<Outbox> {
    // Not `live.sink = sink`: two handshakes of one consumer open in any order, and the engine
    // keeps the session that opens last, so only its open may claim the outbox.
    const live = this.#consumers.get(consumerId)
    if (live) return live
    const { log, keys, redis, presence, membership, stats } = this.#core
    const outbox = new Outbox(this, consumerId, userId)
    outbox.sink = sink
    this.#consumers.set(consumerId, outbox)
    this.#connecting.set(outbox, [])
    stats.connected()
    stats.joined(userRoom(userId))

    const ttl = this.#config.consumerTtlSec
    const key = keys.consumer(consumerId)
    const ownRoom = userRoom(userId)
    if (replaces && replaces !== consumerId) this.#weaken(replaces)
    try {
      const [head, holder] = await Promise.all([log.head(ownRoom), redis.commands.get(key.node)])
      if (holder && holder !== this.id && (await presence.isNodeAlive(holder)))
        await this.#takeOver(consumerId, holder)
      const [previous, inflight, ...flat] = await redis.commands.consumerConnect(
        key.rooms,
        key.node,
        key.inflight,
        this.id,
        ttl,
        ownRoom,
        formatCursor(head),
      )
      await presence.add(userId, consumerId, this.id)
      if (previous && previous !== this.id && previous !== holder) {
        // Taken over from a node that got it meanwhile: it closes its session without waiting.
        membership
          .tell(previous, { type: 'kick', consumerId, byNode: this.id })
          .catch(err => this.#redisError(err, 'kick failed'))
      }
      const rooms: [string, Cursor][] = []
      for (let i = 0; i + 1 < flat.length; i += 2) rooms.push([flat[i]!, parseCursor(flat[i + 1]!)])
      // Not released by the node that held it (a crash): what it acknowledged since is in the rooms' progress.
      if (previous) await this.#readProgress(outbox, rooms)
      for (const [room, cursor] of rooms) outbox.addRoom(room, cursor)
      if (inflight) await this.#restoreInflight(outbox, inflight)
    } catch (err) {
      this.#redisError(err, 'consumer connect failed')
    }
    const queued = this.#connecting.get(outbox) ?? []
    this.#connecting.delete(outbox)
    if (this.#consumers.get(consumerId) !== outbox) {
      // Released while connecting (a kick, a close): the writes above may have come after that
      // release (node key, presence), so release once more; it touches only what names this node,
      // which a newer connect of the consumer here may have written for itself.
      if (!this.#consumers.has(consumerId)) await this.#persist(outbox)
      return outbox
    }
    for (const room of outbox.rooms) this.#follow(outbox, room)
    for (const message of queued) this.#applyControl(outbox, message)
    outbox.resend()
    return outbox
  }

  /**
   * The consumer's session closed. Unless a newer session of the same consumer
   * took over, persist its cursors and its batch in flight, and release it.
   */
  disconnect(outbox: Outbox, sink: ConsumerSink): Promise<void> {
    // A kick closes the sink, whose close handler starts the release: #release then waits for that one.
    const releasing = this.#releases.get(outbox)
    if (releasing) return releasing
    if (outbox.sink !== sink || this.#consumers.get(outbox.consumerId) !== outbox) return Promise.resolve()
    this.#consumers.delete(outbox.consumerId)
    this.#changed.delete(outbox)
    outbox.close()
    for (const room of outbox.rooms) this.#fanout.leave(room, outbox)
    return this.#persist(outbox)
  }

  /**
   * The session of `sink` opened: deliver through it from now on (the batch in
   * flight again, same id). The engine has closed any older session of the
   * consumer. False if the outbox was released meanwhile: close the session.
   */
  attach(outbox: Outbox, sink: ConsumerSink): boolean {
    if (this.#consumers.get(outbox.consumerId) !== outbox) return false
    outbox.sink = sink
    outbox.resend()
    return true
  }

  /** The consumer acknowledged a batch; false if that id is not the batch in flight. */
  ack(outbox: Outbox, batchId: unknown): boolean {
    return outbox.ack(batchId)
  }

  /**
   * The consumer answered a batch with an error: send its messages again
   * shortly under a new id, since clients drop a batch whose id they just saw.
   */
  nack(outbox: Outbox, batchId: unknown): boolean {
    const { inflight, sink } = outbox
    if (inflight?.id !== batchId) return false
    setTimeout(() => {
      // Unless it was acknowledged or went to a new session (which got it again, same id) meanwhile.
      if (outbox.inflight === inflight && outbox.sink === sink) outbox.retry()
    }, 1000).unref()
    return true
  }

  /**
   * Writes the cursors acknowledged since the last flush to the rooms' progress
   * hashes: one HSET (and its EXPIRE) per room for all its local members, so
   * the Redis work of a flush grows with rooms, not with members. A consumer's
   * own hash gets its cursors when it is released; the progress is read only
   * if it never is (a crashed node).
   */
  async flushCursors(): Promise<void> {
    const { keys, redis } = this.#core
    const byRoom = new Map<string, string[]>()
    for (const outbox of this.#changed) {
      const pairs = outbox.takeChangedCursors()
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        const room = pairs[i]!
        const fields = byRoom.get(room)
        if (fields) fields.push(outbox.consumerId, pairs[i + 1]!)
        else byRoom.set(room, [outbox.consumerId, pairs[i + 1]!])
        outbox.progressRooms.add(room)
      }
    }
    this.#changed.clear()
    const writes: Promise<unknown>[] = []
    for (const [room, fields] of byRoom) {
      const { progress } = keys.room(room)
      this.counters.cursorCommits++
      writes.push(
        redis.commands.hset(progress, ...fields),
        redis.commands.expire(progress, this.#config.consumerTtlSec),
      )
    }
    await Promise.all(writes)
  }

  async flushStats(): Promise<void> {
    const { stats, keys, redis } = this.#core
    await Promise.all([
      stats.flush(redis.commands, keys),
      reportNode(redis.commands, keys, this.name, this.online),
    ])
  }

  /**
   * Closes every session (spread over `spreadMs` so they do not all reconnect
   * at once), then persists what is left and stops the timers. Redis stays
   * open: the caller quits it after the producer side is drained too.
   */
  async stop(spreadMs: number): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    const outboxes = [...this.#consumers.values()]
    await Promise.all(
      outboxes.map(
        outbox =>
          new Promise<void>(resolve => {
            setTimeout(() => {
              const sink = outbox.sink as ConsumerSink | undefined
              if (sink) sink.close('server shutdown')
              resolve()
            }, Math.random() * spreadMs)
          }),
      ),
    )
    // Sessions whose transport did not report the close are released here.
    for (const outbox of [...this.#consumers.values()])
      await this.disconnect(outbox, outbox.sink as ConsumerSink)
    await Promise.all(this.#releases.values())
    for (const timer of this.#timers) clearInterval(timer)
    await Promise.allSettled([this.flushCursors(), this.flushStats()])
    const { presence, keys, redis } = this.#core
    await Promise.allSettled([presence.dropNode(this.id), forgetNode(redis.commands, keys, this.name)])
  }

  // ---- OutboxHost ----

  read(room: string, after: { ms: number; seq: number }, count: number): Promise<readonly LogEntry[]> {
    // Recent enough to be in memory: the shared entries, and no Redis round trip.
    const recent = this.#fanout.recentAfter(room, after, count)
    if (recent) return Promise.resolve(recent)
    // Consumers that reconnect together ask for the same range: one Redis read serves them all,
    // unless an announcement of the room came in since that read was issued (it may lack it).
    const key = `${count}:${formatCursor(after)}:${this.#fanout.readEpoch(room)}:${room}`
    let read = this.#reads.get(key)
    if (!read) {
      this.counters.logReads++
      read = this.#core.log.read(room, after, count)
      this.#reads.set(key, read)
      void read.finally(() => this.#reads.delete(key)).catch(() => {}) // the readers handle the error
    }
    return read
  }

  newBatchId(): string {
    return this.#batchIds.next()
  }

  send(outbox: Outbox, batch: Batch): void {
    this.counters.batchesSent++
    ;(outbox.sink as ConsumerSink | undefined)?.send(batch)
  }

  acknowledged(outbox: Outbox, messages: number): void {
    this.counters.messagesAcked += messages
    this.onAck?.(Date.now() - outbox.inflightSince)
    this.#core.stats.delivered(messages)
    this.#changed.add(outbox)
  }

  readFailed(outbox: Outbox, room: string, err: unknown): void {
    this.counters.logReadErrors++
    this.#log.warn({ err, consumerId: outbox.consumerId, room }, 'log read failed, retrying')
  }

  // ---- internals ----

  /** Commits the outbox's cursors and batch in flight, and drops its node key and presence. */
  #persist(outbox: Outbox): Promise<void> {
    const { keys, redis, presence } = this.#core
    const key = keys.consumer(outbox.consumerId)
    const progress = [...outbox.progressRooms]
    const release = Promise.all([
      redis.commands
        .cursorCommit(
          key.rooms,
          key.node,
          key.inflight,
          this.#config.consumerTtlSec,
          this.id,
          outbox.inflightRecord(),
          ...outbox.allCursors(),
        )
        // The consumer's own cursors are the truth now; its entries in the rooms' progress can go.
        .then(() =>
          Promise.all(progress.map(room => redis.commands.hdel(keys.room(room).progress, outbox.consumerId))),
        ),
      presence.remove(outbox.userId, outbox.consumerId, this.id),
    ]).then(
      () => {},
      err => this.#redisError(err, 'consumer release failed'),
    )
    this.#releases.set(outbox, release)
    void release.finally(() => {
      if (this.#releases.get(outbox) === release) this.#releases.delete(outbox)
    })
    return release
  }

  /**
   * A consumer whose last node did not release it: each room's cursor is the
   * later of its own (last release or join) and its progress entry (last
   * flush of that node). The entries are dropped when this node releases it.
   */
  async #readProgress(outbox: Outbox, rooms: [string, Cursor][]): Promise<void> {
    const { keys, redis } = this.#core
    const progress = await Promise.all(
      rooms.map(([room]) => redis.commands.hget(keys.room(room).progress, outbox.consumerId)),
    )
    progress.forEach((text, i) => {
      const entry = rooms[i]!
      if (text === null) return
      outbox.progressRooms.add(entry[0])
      const cursor = parseCursor(text)
      if (isAfter(cursor, entry[1])) entry[1] = cursor
    })
  }

  /** Subscribes the room's announcements for this consumer, then reads its log from the cursor. */
  #follow(outbox: Outbox, room: string): void {
    void this.#fanout.join(room, outbox).then(() => outbox.resync(room))
  }

  #onControl(bytes: Buffer): void {
    const message = decodeControl(bytes)
    if (!message) {
      this.#log.warn('undecodable control message dropped')
      return
    }
    if (message.type === 'released') {
      this.#takeovers.get(message.consumerId)?.()
      return
    }
    if (message.type === 'kick') {
      void this.#release(message.consumerId, message.byNode)
      return
    }
    const outbox = this.#consumers.get(message.consumerId)
    if (!outbox) return // gone meanwhile: its cursors in Redis already say it all
    this.#told.set(outbox, (this.#told.get(outbox) ?? 0) + 1)
    const queued = this.#connecting.get(outbox)
    if (queued)
      queued.push(message) // applied once the rooms from Redis are in place
    else this.#applyControl(outbox, message)
  }

  #applyControl(outbox: Outbox, message: ControlMessage): void {
    switch (message.type) {
      case 'join':
        if (outbox.hasRoom(message.room)) return
        outbox.addRoom(message.room, parseCursor(message.cursor))
        this.#follow(outbox, message.room)
        return
      case 'leave':
        outbox.removeRoom(message.room)
        this.#fanout.leave(message.room, outbox)
        return
      case 'kick':
      case 'released':
        return // handled in #onControl, whatever the consumer's state here
    }
  }

  /**
   * Another node holds the session of a consumer that connects here: ask it to
   * close and persist its cursors, and wait (a bounded time) until it has, so
   * that this node reads cursors that include the last acknowledgements.
   */
  #takeOver(consumerId: string, holder: string): Promise<void> {
    return new Promise<void>(resolve => {
      const timer = setTimeout(done, TAKEOVER_WAIT_MS)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#takeovers.get(consumerId)?.()
      this.#takeovers.set(consumerId, done)
      this.#core.membership.tell(holder, { type: 'kick', consumerId, byNode: this.id }).catch(err => {
        this.#redisError(err, 'kick failed')
        done()
      })
    }).finally(() => this.#takeovers.delete(consumerId))
  }

  /** Runs #reconcile; asked again while it runs, runs it once more after (a failover says so several times). */
  #resync(): void {
    if (this.#stopped) return
    if (this.#reconciling) {
      this.#reconcileAgain = true
      return
    }
    this.#reconciling = this.#reconcile()
      .catch((err: unknown) => this.#redisError(err, 'reconcile failed'))
      .finally(() => {
        this.#reconciling = undefined
        if (!this.#reconcileAgain) return
        this.#reconcileAgain = false
        this.#resync()
      })
  }

  /**
   * After the subscriber reconnected: membership from Redis, then every room log
   * from its cursor, even if the membership of some consumers could not be read.
   * A consumer whose node key names another node was taken over meanwhile.
   */
  async #reconcile(): Promise<void> {
    const { keys, redis } = this.#core
    // A consumer still connecting reads its rooms itself, and its node key may not name this node yet.
    const connected = [...this.#consumers.values()].filter(outbox => !this.#connecting.has(outbox))
    const reads = await Promise.allSettled(
      connected.map(async outbox => {
        const key = keys.consumer(outbox.consumerId)
        const read = (): Promise<[string | null, Record<string, string>]> =>
          Promise.all([redis.commands.get(key.node), redis.commands.hgetall(key.rooms)])
        // A join or leave told while reading may be newer than what was read: read again.
        let told = this.#told.get(outbox)
        let [holder, rooms] = await read()
        for (let again = 0; again < 3 && this.#told.get(outbox) !== told; again++) {
          told = this.#told.get(outbox)
          ;[holder, rooms] = await read()
        }
        if (this.#consumers.get(outbox.consumerId) !== outbox) return
        if (holder !== this.id) {
          ;(outbox.sink as ConsumerSink | undefined)?.close('taken over by another node')
          return
        }
        for (const room of [...outbox.rooms])
          if (!(room in rooms))
            this.#applyControl(outbox, { type: 'leave', consumerId: outbox.consumerId, room })
        for (const [room, cursor] of Object.entries(rooms))
          if (!outbox.hasRoom(room))
            this.#applyControl(outbox, { type: 'join', consumerId: outbox.consumerId, room, cursor })
      }),
    )
    this.#fanout.resyncAll()
    const failed = reads.find(read => read.status === 'rejected')
    if (failed) throw failed.reason
  }

  /** Closes the consumer's session here (if any), persists it, and tells the node taking it over. */
  async #release(consumerId: string, byNode: string): Promise<void> {
    const outbox = this.#consumers.get(consumerId)
    if (outbox) {
      this.counters.kicks++
      const sink = outbox.sink as ConsumerSink | undefined
      sink?.close('taken over by another node')
      if (sink) await this.disconnect(outbox, sink)
    }
    await this.#core.membership
      .tell(byNode, { type: 'released', consumerId })
      .catch(err => this.#redisError(err, 'release notice failed'))
  }

  /**
   * Rebuilds the batch that was in flight when the consumer left, from the
   * room logs, so it goes out again under its old id: a client that had
   * received it drops the copy. If the log no longer holds exactly those
   * messages, the batch is forgotten and delivery goes on from the cursors.
   */
  async #restoreInflight(outbox: Outbox, record: string): Promise<void> {
    let id: unknown, rooms: unknown, order: unknown
    try {
      ;[id, rooms, order] = JSON.parse(record) as unknown[]
    } catch {
      return // not a record we wrote: ignore it
    }
    if (typeof id !== 'string' || !Array.isArray(rooms) || !Array.isArray(order)) return
    const reads = await Promise.all(
      (rooms as unknown[]).map(async (room, index) => {
        const acked = typeof room === 'string' ? outbox.ackedCursor(room) : undefined
        const count = order.filter(i => i === index).length
        if (acked === undefined || count === 0) return undefined
        const entries = await this.#core.log.read(room as string, acked, count)
        const first = entries[0]
        return entries.length === count && first && isNext(acked, first)
          ? entries.map(e => ({ ...e, room: room as string }))
          : undefined
      }),
    )
    if (reads.some(entries => entries === undefined)) return
    const next = reads.map(() => 0)
    const entries: Entry[] = []
    for (const index of order as number[]) {
      const entry = reads[index]?.[next[index]!++]
      if (!entry) return
      entries.push(entry)
    }
    outbox.restoreInflight(makeBatch(id, entries))
  }

  #weaken(consumerId: string): void {
    const { keys, redis } = this.#core
    const key = keys.consumer(consumerId)
    const ttl = this.#config.replacedConsumerTtlSec
    Promise.all([redis.commands.expire(key.rooms, ttl), redis.commands.expire(key.inflight, ttl)]).catch(
      err => this.#redisError(err, 'weaken failed'),
    )
  }

  #checkAckTimeouts(): void {
    const deadline = Date.now() - this.#config.ackTimeoutMs
    for (const outbox of this.#consumers.values()) {
      if (outbox.inflight !== undefined && outbox.inflightSince < deadline) {
        this.counters.ackTimeouts++
        ;(outbox.sink as ConsumerSink | undefined)?.close('ack timeout')
      }
    }
  }

  /** Live consumers' rooms and presence must not expire while they are connected. */
  async #keepConsumersAlive(): Promise<void> {
    const { keys, redis } = this.#core
    const ttl = this.#config.consumerTtlSec
    const writes: Promise<unknown>[] = []
    for (const outbox of this.#consumers.values()) {
      writes.push(redis.commands.expire(keys.consumer(outbox.consumerId).rooms, ttl))
      writes.push(redis.commands.expire(keys.presence(outbox.userId), ttl))
    }
    await Promise.all(writes)
  }

  #redisError(err: unknown, message: string): void {
    this.counters.redisErrors++
    this.#log.warn({ err }, message)
  }
}
