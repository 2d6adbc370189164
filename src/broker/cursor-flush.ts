import type { Config } from '../config/defaults.js'
import { canWritePeriodically, writableNow } from '../redis/connect.js'
import { slotOf } from '../redis/slot.js'
import type { BrokerCore } from './core.js'
import type { NodeContext } from './node-context.js'
import type { Outbox } from './outbox.js'

/** Rooms per progress_write call: a flush of many rooms must not stall Redis for long. */
const FLUSH_ROOMS_PER_CALL = 1000
/**
 * Cursors per progress_write call: a room may have every consumer of the
 * node as a member (100,000 by default), more than a call's arguments may
 * spread; such a room's cursors go in several calls.
 */
const FLUSH_CURSORS_PER_CALL = 10_000

export type CursorFlushConfig = Pick<Config, 'consumerTtlSec' | 'cursorFlushMs'>

/** One room's part of a flush, made once per room: where it goes, and the cursors it carries. */
interface RoomWrite {
  readonly room: string
  /** The room's progress hash. */
  readonly key: string
  /** The hash's slot (one Redis: -1): the flush keeps one write per slot in flight. */
  readonly slot: number
  /** Consumer id, cursor, consumer id, cursor, ... */
  readonly fields: string[]
  /** The outboxes whose cursors it carries: a failed write changes the room in them again. */
  readonly outboxes: Outbox[]
}

/** One progress_write call: the room writes it carries cursors of, their keys, and the arguments after the ttl. */
interface ProgressCall {
  readonly writes: RoomWrite[]
  readonly keys: string[]
  /** Per room, in the order of `keys`: pair count n, n consumer id, cursor pairs. */
  readonly args: (string | number)[]
}

/**
 * One slot's room writes as calls of at most FLUSH_ROOMS_PER_CALL rooms and
 * FLUSH_CURSORS_PER_CALL cursors: a room with more members is split, its
 * parts in consecutive calls (each is an HSET of other fields).
 */
function progressCalls(writes: readonly RoomWrite[]): ProgressCall[] {
  const calls: ProgressCall[] = []
  let call: ProgressCall | undefined
  let cursors = 0
  for (const write of writes) {
    const { fields } = write
    for (let from = 0; from < fields.length;) {
      if (!call || call.keys.length === FLUSH_ROOMS_PER_CALL || cursors === FLUSH_CURSORS_PER_CALL) {
        calls.push((call = { writes: [], keys: [], args: [] }))
        cursors = 0
      }
      const to = Math.min(fields.length, from + 2 * (FLUSH_CURSORS_PER_CALL - cursors))
      call.writes.push(write)
      call.keys.push(write.key)
      call.args.push((to - from) / 2)
      for (let i = from; i < to; i++) call.args.push(fields[i]!) // one by one: more than a call may spread
      cursors += (to - from) / 2
      from = to
    }
  }
  return calls
}

/**
 * The cursor flush: the cursors the node's consumers acknowledged, written
 * every cursorFlushMs to the rooms' progress hashes, where a node that takes
 * a consumer over after a crash reads them (ConsumerStore.readProgress). A
 * consumer's own hash gets its cursors when it is released (ConsumerStore.release),
 * which drops its progress entries: the rooms this flush keeps for it.
 * The invariants it keeps: docs/ARCHITECTURE.md, Invariants, Cursors.
 */
export class CursorFlush {
  readonly #core: BrokerCore
  readonly #config: CursorFlushConfig
  readonly #context: NodeContext
  /** Outboxes with acknowledgements not flushed yet. */
  readonly #changed = new Set<Outbox>()
  /** Rooms whose progress hash holds a cursor of the consumer, dropped when it is released. */
  readonly #progressRooms = new WeakMap<Outbox, Set<string>>()
  /** Slots (one Redis: -1) with a periodic progress write in flight (see #flushPeriodically). */
  readonly #flushing = new Set<number>()
  #timer: NodeJS.Timeout | undefined

  constructor(core: BrokerCore, config: CursorFlushConfig, context: NodeContext) {
    this.#core = core
    this.#config = config
    this.#context = context
  }

  /** Outboxes with acknowledgements not flushed yet (a leak check's reading). */
  get changed(): number {
    return this.#changed.size
  }

  /** Starts flushing every cursorFlushMs. */
  start(): void {
    const { redis } = this.#core
    this.#timer = this.#context.every(
      this.#config.cursorFlushMs,
      () => this.#flushPeriodically(),
      'cursor flush failed',
      // Some master answers: each run writes only to the slots of those that do (writableNow).
      () => canWritePeriodically(redis),
    )
  }

  /** Stops the timer; flush once more (flushCursors), to lose nothing. */
  stop(): void {
    clearInterval(this.#timer)
  }

  /** The consumer acknowledged messages: its cursors go out with the next flush. */
  acknowledged(outbox: Outbox): void {
    this.#changed.add(outbox)
  }

  /** The room's progress hash holds an entry of the consumer (its last node's): its release drops it. */
  foundProgress(outbox: Outbox, room: string): void {
    this.#progressRoomsOf(outbox).add(room)
  }

  /**
   * The outbox is released: none of its cursors is flushed from now on (its
   * release commits them all). The rooms whose progress hash holds its entry.
   */
  release(outbox: Outbox): string[] {
    this.#changed.delete(outbox)
    return [...(this.#progressRooms.get(outbox) ?? [])]
  }

  /**
   * Writes the cursors acknowledged since the last flush to the rooms' progress
   * hashes, one entry per consumer and room, the rooms of a slot in as few
   * script calls as progressCalls makes (progress_write-1n.lua), so the Redis
   * calls of a flush grow with rooms, not with members, and its round trips
   * with slots. A consumer's own hash gets its cursors when it is released; the
   * progress is read only if it never is (a crashed node). The rooms on
   * masters of a cluster that do not answer (the watchdog's last PING) stay
   * changed in their outboxes for a later flush: a write would wait for them.
   * A write that fails changes its rooms again (#notWritten).
   * It does not wait for a periodic write in flight in the slot: the node's
   * stop runs it after every release, which takes each outbox out of the
   * flush (release), so it carries no cursor such a write could race.
   */
  async flushCursors(): Promise<void> {
    const isWritable = writableNow(this.#core.redis)
    await Promise.all(this.#flush((_slot, key) => isWritable(key)).values())
  }

  /**
   * A flush that does not wait for its writes, so that one to a master that
   * stopped answering before the watchdog could tell (it then waits as long
   * as that master) holds up no later flush of the others' rooms: the rooms
   * of a slot whose write is still in flight wait for the next flush, so at
   * most one write per slot (one Redis: one write) is under way.
   */
  #flushPeriodically(): Promise<void> {
    const isWritable = writableNow(this.#core.redis)
    const writes = this.#flush((slot, key) => !this.#flushing.has(slot) && isWritable(key))
    for (const [slot, write] of writes) {
      this.#flushing.add(slot)
      write
        .catch((err: unknown) => this.#context.redisError(err, 'cursor flush failed'))
        .finally(() => this.#flushing.delete(slot))
    }
    return Promise.resolve()
  }

  /**
   * Sends the flush of the rooms whose progress hash `canWrite` takes (the
   * others stay changed in their outboxes, for a later flush): its writes by
   * slot (one Redis: -1). Each room's key and slot are made once per flush,
   * when an outbox first offers its cursor: a room has many members.
   */
  #flush(canWrite: (slot: number, key: string) => boolean): Map<number, Promise<unknown>> {
    const { redis } = this.#core
    /** Each room offered in this flush: its write, or null if it waits for a later flush. */
    const roomWrites = new Map<string, RoomWrite | null>()
    const isWritable = (room: string): boolean => {
      let write = roomWrites.get(room)
      if (write === undefined) {
        const key = this.#progressOf(room)
        const slot = redis.isCluster ? slotOf(key) : -1
        write = canWrite(slot, key) ? { room, key, slot, fields: [], outboxes: [] } : null
        roomWrites.set(room, write)
      }
      return write !== null
    }
    for (const outbox of this.#changed) {
      const pairs = outbox.cursors.takeChanged(isWritable)
      for (let i = 0; i + 1 < pairs.length; i += 2) {
        const write = roomWrites.get(pairs[i]!)!
        write.fields.push(outbox.consumerId, pairs[i + 1]!)
        write.outboxes.push(outbox)
        this.#progressRoomsOf(outbox).add(write.room)
      }
      if (!outbox.cursors.hasChanged) this.#changed.delete(outbox)
    }
    const bySlot = new Map<number, RoomWrite[]>()
    for (const write of roomWrites.values()) {
      if (!write || write.fields.length === 0) continue // waits, or none of its outboxes had its cursor
      const group = bySlot.get(write.slot)
      if (group) group.push(write)
      else bySlot.set(write.slot, [write])
    }
    const writes = new Map<number, Promise<unknown>>()
    for (const [slot, rooms] of bySlot) {
      const chunks: Promise<unknown>[] = []
      for (const call of progressCalls(rooms)) {
        this.#context.counters.cursorCommits += call.keys.length
        chunks.push(
          redis.commands
            .progressWrite(call.keys.length, ...call.keys, this.#config.consumerTtlSec, ...call.args)
            .catch((err: unknown) => {
              this.#notWritten(call.writes)
              throw err
            }),
        )
      }
      writes.set(slot, Promise.all(chunks))
    }
    return writes
  }

  /**
   * A progress write failed (an error, or the connection lost): the cursors it
   * carried were taken from their outboxes, and a crash now would deliver what
   * they acknowledged again. Its rooms are changed again in the outboxes still
   * held, for the next flush; a room is changed or not, so nothing piles up
   * while Redis keeps failing. One released since has committed its cursors.
   */
  #notWritten(writes: readonly RoomWrite[]): void {
    for (const { room, outboxes } of writes)
      for (const outbox of outboxes) if (outbox.cursors.notWritten(room)) this.#changed.add(outbox)
  }

  /** A room's progress hash, which the cursor flush writes. */
  readonly #progressOf = (room: string): string => this.#core.keys.room(room).progress

  #progressRoomsOf(outbox: Outbox): Set<string> {
    let rooms = this.#progressRooms.get(outbox)
    if (!rooms) this.#progressRooms.set(outbox, (rooms = new Set()))
    return rooms
  }
}
