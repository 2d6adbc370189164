import type { Config } from '../config/defaults.js'
import { userRoom } from '../redis/keys.js'
import { isRefusedUnrun } from '../redis/script-request.js'
import { scriptRequests, type ScriptCommands } from '../redis/scripts.js'
import { canWritePeriodically, writableNow } from '../redis/connect.js'
import { groupBySlot } from '../redis/slot.js'
import { batchIdOf, makeBatch } from './batch.js'
import type { BrokerCore } from './core.js'
import type { CursorFlush } from './cursor-flush.js'
import { isAfter, isNext, isSame, missedBetween, parseCursor, type Cursor } from './cursor.js'
import type { Entry } from './entry.js'
import type { NodeContext } from './node-context.js'
import type { Outbox } from './outbox.js'
import { inflightRecord } from './outbox-cursors.js'

/** consumer_connect-5.lua, one call per handshake: written as one request (see ScriptRequests). */
const CONNECT = scriptRequests('consumer_connect-5.lua')
type ConnectReply = Awaited<ReturnType<ScriptCommands['consumerConnect']>>

/** Consumers per consumer_touch call (5 commands each inside): a refresh must not stall Redis for long. */
const TOUCH_CONSUMERS_PER_CALL = 500

export type StoreConfig = Pick<Config, 'consumerTtlSec' | 'replacedConsumerTtlSec'>

/** Where a consumer stands when a node has taken its session (consumer_connect-5.lua). */
export interface TakenConsumer {
  readonly isTaken: true
  /** The node that held its session last, unless that expired or it was released. */
  readonly previous: string | null
  /** Each of its rooms, at its acknowledged cursor. */
  readonly rooms: [room: string, cursor: Cursor][]
  /** The record of its batch in flight when it left (see inflightRecord, outbox-cursors.ts). */
  readonly inflight: string | null
  /** The newest message of the consumer's own room. */
  readonly ownHead: Cursor
}

/** Another node holds the consumer's session: take it over from there first. */
export interface HeldConsumer {
  readonly isTaken: false
  readonly holder: string
}

/** The parts of a node its consumer store works with, by name (BrokerNode wires them). */
export interface StoreDeps {
  readonly core: BrokerCore
  /** The node's id: a take names it in Redis as the consumer's holder. */
  readonly nodeId: string
  readonly config: StoreConfig
  readonly context: NodeContext
  /** Told which rooms' progress holds a consumer's entry, and of each release. */
  readonly cursors: CursorFlush
  /** The outboxes held here, whose keys keepAlive refreshes. */
  readonly live: () => Iterable<Outbox>
  /** Whether the node holds the outbox as it is (restore writes only those). */
  readonly holds: (outbox: Outbox) => boolean
  /** keepAlive wrote a lost record again: the node follows the rooms it names. */
  readonly restored: (outbox: Outbox) => void
}

/**
 * What a node keeps in Redis for the consumers it holds: taking a session
 * (consumer_connect-5.lua), the acknowledged cursors (flushed to the rooms'
 * progress hashes while live by the CursorFlush, committed to the consumer's
 * own hash on release, cursor_commit-5.lua), the batch in flight across a
 * reconnect, and the ttls that keep a live consumer's keys. The invariants it
 * keeps: docs/ARCHITECTURE.md, Invariants, Cursors.
 */
export class ConsumerStore {
  readonly #core: BrokerCore
  readonly nodeId: string
  readonly #config: StoreConfig
  readonly #context: NodeContext
  readonly #cursors: CursorFlush
  readonly #live: () => Iterable<Outbox>
  readonly #holds: (outbox: Outbox) => boolean
  readonly #restored: (outbox: Outbox) => void
  /** Releases under way: a second disconnect of one outbox waits for the first. */
  readonly #releases = new Map<Outbox, Promise<void>>()
  /** The last release under way of each consumer: a kick that finds it released here waits for it. */
  readonly #consumerReleases = new Map<string, Promise<void>>()
  #timer: NodeJS.Timeout | undefined

  constructor(deps: StoreDeps) {
    this.#core = deps.core
    this.nodeId = deps.nodeId
    this.#config = deps.config
    this.#context = deps.context
    this.#cursors = deps.cursors
    this.#live = deps.live
    this.#holds = deps.holds
    this.#restored = deps.restored
  }

  /** Starts refreshing the ttls of the live consumers' keys. */
  start(): void {
    const { consumerTtlSec, replacedConsumerTtlSec } = this.#config
    const { redis } = this.#core
    this.#timer = this.#context.every(
      Math.max(1000, (Math.min(consumerTtlSec, replacedConsumerTtlSec) * 1000) / 3),
      () => this.keepAlive(),
      'consumer ttl refresh failed',
      // Some master answers: each run writes only to the slots of those that do (writableNow).
      () => canWritePeriodically(redis),
    )
  }

  /** Stops the timer; wait for settled(), to lose nothing. */
  stop(): void {
    clearInterval(this.#timer)
  }

  /** The node that holds the consumer's session, and its rooms with their cursors. */
  readMembership(consumerId: string): Promise<[holder: string | null, rooms: Record<string, string>]> {
    const { redis, keys } = this.#core
    const key = keys.consumer(consumerId)
    return Promise.all([redis.commands.get(key.node), redis.commands.hgetall(key.rooms)])
  }

  /** The consumer's cursor in one room as its membership records it, null if it is not in it. */
  readRoom(consumerId: string, room: string): Promise<string | null> {
    const { redis, keys } = this.#core
    return redis.commands.hget(keys.consumer(consumerId).rooms, room)
  }

  /**
   * Takes the consumer's session for this node (unless another node holds it
   * and not `evenIfHeld`), joins it to its own room at that room's head if it
   * is not in it, counts it as present, and reads where it stands: one script.
   */
  async take(outbox: Outbox, evenIfHeld: boolean): Promise<TakenConsumer | HeldConsumer> {
    const { redis, keys } = this.#core
    const { consumerId, userId } = outbox
    const key = keys.consumer(consumerId)
    const ownRoom = userRoom(userId)
    const reply = (await CONNECT.call(
      redis.commands,
      [key.rooms, key.node, key.inflight, keys.presence(userId), keys.room(ownRoom).head],
      [this.nodeId, this.#config.consumerTtlSec, consumerId, ownRoom, evenIfHeld ? '1' : ''],
      // A handshake refused at once comes back after retryAfterMs, rather than wait for ioredis'
      // retries while the cluster is down (docs/RELIABILITY.md, "A Redis Cluster that is down").
      { failsAtClusterDown: true },
    ).catch((err: unknown) => {
      if (isRefusedUnrun(err)) redis.reportClusterDown() // the watchdog asks at once
      throw err
    })) as ConnectReply
    if (reply[0] === 0) return { isTaken: false, holder: reply[1] }
    const [, previous, inflight, head, ...flat] = reply
    const rooms: [string, Cursor][] = []
    for (let i = 0; i + 1 < flat.length; i += 2) rooms.push([flat[i]!, parseCursor(flat[i + 1]!)])
    return {
      isTaken: true,
      previous: previous ?? null,
      rooms,
      inflight: inflight ?? null,
      ownHead: parseCursor(head),
    }
  }

  /**
   * A consumer whose last node did not release it (a crash): each room's
   * cursor becomes the later of its own (last release or join) and its
   * progress entry (that node's last flush). The entries go on release.
   */
  async readProgress(outbox: Outbox, rooms: [string, Cursor][]): Promise<void> {
    const { keys, redis } = this.#core
    const progress = await Promise.all(
      rooms.map(([room]) => redis.commands.hget(keys.room(room).progress, outbox.consumerId)),
    )
    progress.forEach((text, i) => {
      const entry = rooms[i]!
      if (text === null) return
      this.#cursors.foundProgress(outbox, entry[0])
      const cursor = parseCursor(text)
      if (isAfter(cursor, entry[1])) entry[1] = cursor
    })
  }

  /**
   * Rebuilds the batch that was in flight when the consumer left, from the
   * room logs, so it goes out again under its old id (after its gap notice,
   * if it follows a hole): a client that had received it drops the copy. If
   * the log no longer holds exactly those messages, or the record is of a
   * batch acknowledged since (a node that crashed leaves the record of the
   * release before), the batch is forgotten and delivery goes on from the
   * cursors. A room of the batch the consumer
   * left meanwhile (or left and joined again, at a newer head) is read from
   * its recorded first message: the batch goes again whole, as Outbox.resend
   * sends it on the same node, so its other rooms' messages are not
   * delivered a second time under another id. An acknowledgement moves the
   * cursor of every room of the batch past its first message: a room whose
   * cursor is still before it says the batch was not acknowledged; with no
   * such room, it is forgotten.
   */
  async restoreInflight(outbox: Outbox, record: string): Promise<void> {
    let id: unknown, rooms: unknown, order: unknown, firsts: unknown
    try {
      ;[id, rooms, order, firsts] = JSON.parse(record) as unknown[]
    } catch {
      return // not a record we wrote: ignore it
    }
    if (typeof id !== 'string' || !Array.isArray(rooms) || !Array.isArray(order)) return
    // Each room's first message, as sent (a record of an older version has none).
    const firstOf = (index: number): Cursor | undefined =>
      Array.isArray(firsts) && typeof firsts[index] === 'string' ? parseCursor(firsts[index]) : undefined
    let missed: number | null | undefined
    let stayed = 0
    const reads = await Promise.all(
      (rooms as unknown[]).map(async (room, index) => {
        const count = order.filter(i => i === index).length
        const recorded = firstOf(index)
        if (typeof room !== 'string' || count === 0) return undefined
        const acked = outbox.cursors.acked(room)
        // Left since, or joined again at a newer head (or acknowledged since: then no room stayed
        // before its first, below): its messages from the one right before the recorded first.
        if (acked === undefined || (recorded && !isAfter(recorded, acked))) {
          if (!recorded || recorded.seq < 1) return undefined
          const entries = await this.#core.log.read(
            room,
            { ms: recorded.ms, seq: recorded.seq - 1 },
            count,
            0,
          )
          return entries.length === count && isSame(entries[0]!, recorded) ? entries : undefined
        }
        stayed++
        // However large: a batch holds at most batchMaxMessages.
        const entries = await this.#core.log.read(room, acked, count, 0)
        const first = entries[0]
        if (entries.length !== count || !first || (recorded && !isSame(first, recorded))) return undefined
        if (isNext(acked, first)) return entries
        // Only the batch's first message may follow a hole (Outbox.pump), and only one recorded.
        if (!recorded || index !== order[0]) return undefined
        const lost = missedBetween(acked, first)
        if (lost !== 0) missed = lost // 0: a log begun again at seq 1, for which Outbox.#read tells no hole
        return entries
      }),
    )
    if (stayed === 0 || reads.some(entries => entries === undefined)) return
    const next = reads.map(() => 0)
    const entries: Entry[] = []
    for (const index of order as number[]) {
      const entry = reads[index]?.[next[index]!++]
      if (!entry) return
      entries.push(entry)
    }
    // A record without firsts (an older version) may be one acknowledged since: its id must fit.
    if (!Array.isArray(firsts) && id !== batchIdOf(entries)) return
    outbox.restoreInflight(makeBatch(id, entries), missed)
  }

  /**
   * Commits the outbox's cursors and batch in flight to the consumer's own
   * keys, then drops its progress entries; drops its node key and presence
   * where they still name this node. Never rejects (a failure is reported).
   */
  release(outbox: Outbox): Promise<void> {
    const { keys, redis } = this.#core
    const { consumerId, userId } = outbox
    // No flush of its cursors from now on: the release commits them all.
    const progressRooms = this.#cursors.release(outbox)
    const key = keys.consumer(consumerId)
    const ownProgress = keys.room(userRoom(userId)).progress
    // The own room's entry goes in the script (same slot); the others' after it.
    const progress = progressRooms.filter(room => room !== userRoom(userId))
    const release = redis.commands
      .cursorCommit(
        key.rooms,
        key.node,
        key.inflight,
        keys.presence(userId),
        ownProgress,
        this.#config.consumerTtlSec,
        this.nodeId,
        inflightRecord(outbox.inflight),
        consumerId,
        outbox.cursors.takeAll(),
      )
      // The consumer's own cursors are the truth now; its entries in the rooms' progress can go,
      // unless another node holds it by now (a late release), which may have written them since.
      .then(([, released]) =>
        released === 1
          ? Promise.all(progress.map(room => redis.commands.hdel(keys.room(room).progress, consumerId)))
          : undefined,
      )
      .then(
        () => {},
        err => this.#context.redisError(err, 'consumer release failed'),
      )
    this.#releases.set(outbox, release)
    this.#consumerReleases.set(consumerId, release)
    void release.finally(() => {
      if (this.#releases.get(outbox) === release) this.#releases.delete(outbox)
      if (this.#consumerReleases.get(consumerId) === release) this.#consumerReleases.delete(consumerId)
    })
    return release
  }

  /**
   * Lets go of an outbox whose take did not run (isRefusedUnrun): nothing in
   * Redis names this node for it, so only what the node keeps goes.
   */
  forget(outbox: Outbox): void {
    this.#cursors.release(outbox)
  }

  /** The release of `outbox` under way, if any. */
  releasing(outbox: Outbox): Promise<void> | undefined {
    return this.#releases.get(outbox)
  }

  /** Releases under way, by outbox and by consumer (a leak check's reading). */
  get releases(): { readonly outboxes: number; readonly consumers: number } {
    return { outboxes: this.#releases.size, consumers: this.#consumerReleases.size }
  }

  /** The last release of the consumer under way here, if any. */
  releasingConsumer(consumerId: string): Promise<void> | undefined {
    return this.#consumerReleases.get(consumerId)
  }

  /** Resolves once every release under way is done. */
  async settled(): Promise<void> {
    await Promise.all(this.#releases.values())
  }

  /**
   * The browser connected again under a new consumer id (the snapper.ws
   * cookie named the old one): the old id's rooms and batch live only
   * replacedConsumerTtlSec more, instead of consumerTtlSec.
   */
  weaken(consumerId: string): void {
    const { keys, redis } = this.#core
    const key = keys.consumer(consumerId)
    const ttl = this.#config.replacedConsumerTtlSec
    Promise.all([redis.commands.expire(key.rooms, ttl), redis.commands.expire(key.inflight, ttl)]).catch(
      err => this.#context.redisError(err, 'weaken failed'),
    )
  }

  /**
   * Live consumers' rooms, node key and presence must not expire while they
   * are connected: one consumer_touch-3n.lua call per slot (a user's keys
   * share one) for up to TOUCH_CONSUMERS_PER_CALL consumers. Also run at
   * once when the node finds it was taken for dead (BrokerNode's liveness).
   */
  async keepAlive(): Promise<void> {
    const { keys, redis } = this.#core
    const isWritable = writableNow(redis)
    const consumers: { keys: readonly [string, string, string]; outbox: Outbox }[] = []
    for (const outbox of this.#live()) {
      const { rooms, node } = keys.consumer(outbox.consumerId)
      // Those on a master that does not answer wait for the next run: a write would wait for it.
      if (isWritable(rooms)) consumers.push({ keys: [rooms, node, keys.presence(outbox.userId)], outbox })
    }
    const writes: Promise<unknown>[] = []
    for (const group of groupBySlot(consumers, consumer => consumer.keys[0], redis.isCluster)) {
      for (let start = 0; start < group.length; start += TOUCH_CONSUMERS_PER_CALL) {
        const chunk = group.slice(start, start + TOUCH_CONSUMERS_PER_CALL)
        const touched = redis.commands.consumerTouch(
          3 * chunk.length,
          ...chunk.flatMap(consumer => consumer.keys),
          this.nodeId,
          this.#config.consumerTtlSec,
          ...chunk.flatMap(({ outbox }) => [outbox.consumerId, userRoom(outbox.userId)]),
        )
        // Records Redis lost (README, Faults: after Redis lost data) are written again from the
        // sessions; rooms joined since the loss are in them too, for the node to follow.
        writes.push(
          touched.then(([, ...lost]) =>
            Promise.all(
              lost.map(async position => {
                const { outbox } = chunk[position - 1]!
                if (await this.restore(outbox)) this.#restored(outbox)
              }),
            ),
          ),
        )
      }
    }
    await Promise.all(writes)
  }

  /**
   * Writes the record of a consumer this node holds again (node key, rooms
   * at their acknowledged cursors, presence) if Redis lost it; true if it did.
   * Rooms joined since the loss stay in it: the caller then follows the
   * record (consumer_restore-4.lua).
   * Not once released: a release sent after this call runs after it (one
   * slot, one connection) and undoes it, as it should.
   */
  async restore(outbox: Outbox): Promise<boolean> {
    if (!this.#holds(outbox)) return false
    const { keys, redis } = this.#core
    const { rooms, node, left } = keys.consumer(outbox.consumerId)
    const restored = await redis.commands.consumerRestore(
      rooms,
      node,
      keys.presence(outbox.userId),
      left,
      this.nodeId,
      this.#config.consumerTtlSec,
      outbox.consumerId,
      userRoom(outbox.userId),
      outbox.cursors.all(),
    )
    return restored === 1
  }
}
