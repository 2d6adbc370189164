import { guard } from '../guard.js'
import type { Logger } from '../log.js'
import { batchIdOf, batchLength, isOneRun, makeBatch, type Batch } from './batch.js'
import { isAfter, isNext, missedBetween, type Cursor } from './cursor.js'
import type { Entry, LogEntries } from './entry.js'
import { Fifo } from './fifo.js'
import { OutboxCursors, type AckedRoom } from './outbox-cursors.js'
import { RoomMap } from './room-map.js'

/** Where an outbox's batches go: the consumer's live session, adapted by the gateway. */
export interface ConsumerSink {
  send(batch: Batch): void
  /**
   * The gap notice: `missed` messages of `room` (null: an unknown number) are
   * no longer in its log; the next batch holds what follows them.
   */
  gap(room: string, missed: number | null): void
  /** `retryAfterMs`: tell the client when to come back, where its protocol can say so. */
  close(reason: string, retryAfterMs?: number): void
}

/** What an outbox needs from its node: BrokerNode makes it, its Connects hands it out (docs/ARCHITECTURE.md, Inside a node). */
export interface OutboxHost<S extends ConsumerSink> {
  readonly batchMaxMessages: number
  readonly batchMaxBytes: number
  /** Messages held in memory per consumer; beyond, rooms fall back to reading the log. */
  readonly maxQueue: number
  /** UTF-8 bytes of messages held in memory per consumer (but always one message); beyond, the same. */
  readonly maxQueueBytes: number
  /** Where a throw out of an outbox's timer is logged (a bug). */
  readonly log: Logger
  /** Up to `count` messages of `room` after `after` (may be shared with other readers). */
  read(room: string, after: Cursor, count: number): Promise<LogEntries>
  /** A fresh id for a batch sent again after the client answered it with an error. */
  newBatchId(): string
  /** Hands a batch to the consumer's session. */
  send(outbox: Outbox<S>, batch: Batch): void
  /** Acknowledged cursors moved: schedule a commit. */
  acknowledged(outbox: Outbox<S>, batch: Batch): void
  /** A log read failed (Redis down): it is retried later. */
  readFailed(outbox: Outbox<S>, room: string, err: unknown): void
  /** A log read found a hole: messages the consumer should get are no longer in the log. */
  holeFound(outbox: Outbox<S>, room: string, missed: number | null): void
}

/** Messages of a room that the log no longer had when a consumer read it. */
interface Hole {
  readonly room: string
  /** How many, when the seqs say (null: the log started again meanwhile). */
  readonly missed: number | null
}

/** Where a consumer stands in one room: its acknowledged cursor (`acked`, moved by OutboxCursors), and its delivery. */
interface RoomState extends AckedRoom {
  /** Last message queued or sent: the next one must follow it. */
  queued: Cursor
  /**
   *   behind ──resync / queue drained──▶ reading ──end of log──▶ live
   *     ▲                                                           │
   *     └───────── queue full ◀──────────── gap ▶ reading ◀─────────┘
   *
   * behind: announcements are ignored (the log has them); reading: they are
   * held in `pending` and applied after the read; live: they are queued.
   */
  mode: 'live' | 'reading' | 'behind'
  /** Announcements that arrived while reading, oldest first. */
  pending: Entry[] | undefined
  /** Read once more when the current read ends (announcements may have been missed). */
  again: boolean
}

/** An entry's weight in the queue: one function for every outbox, not a closure each. */
const entryBytes = (entry: Entry): number => entry.bytes

/** Most messages one log read asks for. */
const READ_MAX = 500
/** Delay before retrying a failed log read, in ms. */
const READ_RETRY_MS = 500

/**
 * One consumer's delivery state: its rooms, the messages waiting for it, and
 * the one batch it has not acknowledged yet. Its acknowledged cursors, which
 * the commits take, are `cursors` (outbox-cursors.ts).
 *
 * Messages come from two sources that this class merges into one ordered,
 * gap-free stream per room: announcements (live, cheap) and log reads (after a
 * gap, a (re)connect, a join, or a full queue). The log is the truth; the
 * queue is a bounded cache of it. The rules it keeps: docs/ARCHITECTURE.md,
 * Invariants, Order and Once.
 *
 * Where the log no longer has what the consumer should get next (trimmed by
 * length, bytes or age), the consumer is told: a gap notice goes right before
 * the batch that starts with the first message after the hole, and again
 * whenever that batch is sent again.
 */
export class Outbox<S extends ConsumerSink = ConsumerSink> {
  readonly consumerId: string
  readonly userId: string
  /** The live session's sink; undefined while there is none. */
  sink: S | undefined
  /** The unacknowledged batch, and when it was sent (ms). */
  inflight: Batch | undefined
  inflightSince = 0
  /** The acknowledged cursors of its rooms, for the cursor flush and the release. */
  readonly cursors: OutboxCursors

  readonly #host: OutboxHost<S>
  readonly #rooms = new RoomMap<RoomState>()
  readonly #queue = new Fifo<Entry>(entryBytes)
  // Made on first use, as most consumers of a node sit idle: an empty Set or Map is about 160 bytes with its table.
  /** Rooms left behind (their queue was full): read from the log once it has drained. */
  #behind: Set<string> | undefined
  /** Queued entries that follow a hole, each with its hole: a batch starts at each of them. */
  #holes: Map<Entry, Hole> | undefined
  /** The hole told right before the batch in flight. */
  #inflightHole: Hole | undefined
  /**
   * The first batch of this outbox ends at the first chunk end: after a crash,
   * the batch a consumer in step had last comes again as it was (same
   * messages, same id), whatever followed it in the log.
   */
  #isFirstBatch = true

  constructor(host: OutboxHost<S>, consumerId: string, userId: string) {
    this.#host = host
    this.consumerId = consumerId
    this.userId = userId
    this.cursors = new OutboxCursors(this.#rooms)
  }

  /** Closed with its cursors (close()): they keep the one flag. */
  get #closed(): boolean {
    return this.cursors.isClosed
  }

  get rooms(): IterableIterator<string> {
    return this.#rooms.keys()
  }

  get queued(): number {
    return this.#queue.length
  }

  /** UTF-8 bytes of the messages waiting. */
  get queuedBytes(): number {
    return this.#queue.size
  }

  hasRoom(room: string): boolean {
    return this.#rooms.has(room)
  }

  /** Adds a room at its acknowledged cursor; call resync() once its announcements are subscribed. */
  addRoom(room: string, acked: Cursor): void {
    if (this.#rooms.has(room)) return
    this.#rooms.set(room, { acked, queued: acked, mode: 'behind', pending: undefined, again: false })
  }

  removeRoom(room: string): void {
    if (!this.#rooms.delete(room)) return
    this.#behind?.delete(room)
    this.cursors.forget(room)
    this.#queue.removeWhere(entry => entry.room === room)
    const holes = this.#holes
    if (holes) for (const entry of holes.keys()) if (entry.room === room) holes.delete(entry)
  }

  /** Reads a room's log from where it stands: after adding it, or when announcements may have been lost. */
  resync(room: string): void {
    const state = this.#rooms.get(room)
    if (!state || this.#closed) return
    if (state.mode === 'reading') state.again = true
    else this.#read(room, state)
  }

  /**
   * Live messages of a room (contiguous, oldest first). `shared` makes the
   * batch of exactly these entries, the same object for every consumer.
   */
  offer(room: string, entries: readonly Entry[], shared?: () => Batch | undefined): void {
    const state = this.#rooms.get(room)
    const last = entries[entries.length - 1]
    if (!state || !last || this.#closed) return
    if (state.mode === 'reading') {
      const pending = (state.pending ??= [])
      if (pending.length + entries.length > this.#host.maxQueue) {
        state.pending = undefined // too many to hold: read them from the log instead
        state.again = true
      } else for (const entry of entries) pending.push(entry) // maxQueue may be more than a call can spread
      return
    }
    if (state.mode === 'behind') return
    let start = 0
    while (start < entries.length && !isAfter(entries[start]!, state.queued)) start++ // had it already
    if (start === entries.length) return
    if (!isNext(state.queued, entries[start]!)) {
      this.#read(room, state) // a gap: the log has what was missed
      return
    }
    if (
      start === 0 &&
      shared &&
      this.inflight === undefined &&
      this.#queue.length === 0 &&
      this.sink !== undefined
    ) {
      const batch = shared()
      if (batch) {
        state.queued = last
        this.#send(batch)
        return
      }
    }
    this.#enqueue(room, state, entries, start)
    this.pump()
  }

  /**
   * The consumer acknowledged a batch. False if it was not the batch in flight,
   * or the outbox is closed: its release committed its cursors and batch in
   * flight, and an ack now would be flushed as progress of a consumer this
   * node no longer holds (the batch goes again, same id, where it reconnects).
   */
  ack(batchId: unknown): boolean {
    const batch = this.inflight
    if (batch === undefined || batch.id !== batchId || this.#closed) return false
    this.cursors.acknowledge(batch.entries)
    this.inflight = undefined
    this.#inflightHole = undefined
    this.#host.acknowledged(this, batch)
    this.#resumeBehind()
    this.pump()
    return true
  }

  /** Sends the next batch if nothing is in flight: its hole's notice first, if it follows one. */
  pump(): void {
    if (this.inflight !== undefined || this.sink === undefined || this.#queue.length === 0) return
    const queue = this.#queue
    const { batchMaxMessages, batchMaxBytes } = this.#host
    let count = batchLength(i => queue.at(i), batchMaxMessages, batchMaxBytes, this.#isFirstBatch)
    this.#isFirstBatch = false
    let hole: Hole | undefined
    const holes = this.#holes
    if (holes !== undefined && holes.size > 0) {
      hole = holes.get(queue.at(0)!)
      holes.delete(queue.at(0)!)
      for (let i = 1; i < count; i++) if (holes.has(queue.at(i)!)) count = i // the next batch starts there
    }
    this.#inflightHole = hole
    if (hole) this.sink.gap(hole.room, hole.missed)
    this.#send(this.batchOf(queue.take(count)))
  }

  /** Sends the batch in flight again, with the same id (a new session took over), after its gap notice. */
  resend(): void {
    if (this.inflight === undefined || this.sink === undefined) return this.pump()
    this.#sendAgain(this.inflight)
  }

  /** The batch of exactly these entries: shared with consumers in step when it can be. */
  batchOf(entries: readonly Entry[]): Batch {
    const first = entries[0]!
    const cached = first.batch
    const last = entries[entries.length - 1]
    if (cached && cached.entries.length === entries.length && cached.entries[entries.length - 1] === last)
      return cached
    const batch = makeBatch(batchIdOf(entries), entries)
    if (isOneRun(entries)) first.batch = batch
    return batch
  }

  /**
   * The batch in flight failed at the client: its messages again, under a new id (clients drop
   * a repeated id), after its gap notice.
   */
  retry(): void {
    const batch = this.inflight
    if (batch !== undefined && this.sink !== undefined)
      this.#sendAgain(makeBatch(this.#host.newBatchId(), batch.entries))
  }

  /** The batch in flight, sent again: the hole it follows is told again first, until it is acknowledged. */
  #sendAgain(batch: Batch): void {
    const hole = this.#inflightHole
    if (hole) this.sink!.gap(hole.room, hole.missed)
    this.#send(batch)
  }

  /**
   * Installs a batch rebuilt from an in-flight record (inflightRecord) as the one to send first;
   * `missed` (a number or null) if it follows a hole in its first room, told again before it.
   */
  restoreInflight(batch: Batch, missed?: number | null): void {
    for (const entry of batch.entries) {
      const state = this.#rooms.get(entry.room)
      if (state && isAfter(entry, state.queued)) state.queued = entry
    }
    this.inflight = batch
    this.#inflightHole = missed === undefined ? undefined : { room: batch.entries[0]!.room, missed }
  }

  close(): void {
    this.sink = undefined
    this.cursors.close()
  }

  #send(batch: Batch): void {
    this.inflight = batch
    this.inflightSince = Date.now()
    this.#host.send(this, batch)
  }

  /**
   * Queues entries[start..] of a room, as many as fit (by count and bytes; one
   * always fits an empty queue); the rest waits in the log. Returns how many.
   */
  #enqueue(room: string, state: RoomState, entries: readonly Entry[], start: number): number {
    const queue = this.#queue
    const { maxQueue, maxQueueBytes } = this.#host
    let end = start
    for (; end < entries.length && queue.length < maxQueue; end++) {
      const entry = entries[end]!
      if (queue.length > 0 && queue.size + entry.bytes > maxQueueBytes) break
      queue.push(entry)
    }
    if (end > start) state.queued = entries[end - 1]!
    if (end < entries.length) {
      state.mode = 'behind'
      state.pending = undefined
      ;(this.#behind ??= new Set()).add(room)
    }
    return end - start
  }

  #resumeBehind(): void {
    const { maxQueue, maxQueueBytes } = this.#host
    const behind = this.#behind
    if (!behind?.size || this.#queue.length > maxQueue / 2 || this.#queue.size > maxQueueBytes / 2) return
    for (const room of [...behind]) {
      const state = this.#rooms.get(room)
      if (state) this.#read(room, state)
    }
  }

  #read(room: string, state: RoomState): void {
    state.mode = 'reading'
    state.again = false
    this.#behind?.delete(room)
    const want = Math.min(READ_MAX, this.#host.maxQueue - this.#queue.length)
    if (want <= 0 || this.#queue.size >= this.#host.maxQueueBytes) {
      state.mode = 'behind'
      state.pending = undefined
      ;(this.#behind ??= new Set()).add(room)
      return
    }
    const from = state.queued
    this.#host.read(room, from, want).then(
      logEntries => {
        if (this.#closed || this.#rooms.get(room) !== state || state.mode !== 'reading') return
        const entries: Entry[] = []
        // Queued as they are: from the node's memory they are the shared entries (with their batches).
        for (const entry of logEntries) if (isAfter(entry, state.queued)) entries.push(entry)
        const first = entries[0]
        const missed = first && !isNext(state.queued, first) ? missedBetween(state.queued, first) : 0
        if (this.#enqueue(room, state, entries, 0) > 0 && missed !== 0) {
          ;(this.#holes ??= new Map()).set(first!, { room, missed })
          this.#host.holeFound(this, room, missed)
        }
        if (state.mode === 'reading') {
          // Fewer than asked for is the log's end, unless its bytes cut the read short.
          if (logEntries.length === want || logEntries.isCut === true || state.again) this.#read(room, state)
          else this.#goLive(room, state)
        }
        this.pump()
      },
      (err: unknown) => {
        this.#host.readFailed(this, room, err)
        setTimeout(
          guard(this.#host.log, 'log read retry', () => {
            if (!this.#closed && this.#rooms.get(room) === state && state.mode === 'reading')
              this.#read(room, state)
          }),
          READ_RETRY_MS,
        ).unref()
      },
    )
  }

  /** The log is read to its end: apply what was announced meanwhile, then follow announcements. */
  #goLive(room: string, state: RoomState): void {
    const pending = state.pending
    state.pending = undefined
    state.mode = 'live'
    if (pending) this.offer(room, pending)
  }
}
