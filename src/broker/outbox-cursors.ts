import type { Batch } from './batch.js'
import { formatCursor, isAfter, type Cursor } from './cursor.js'
import type { Entry } from './entry.js'

/** What these cursors need of an outbox's room: where its acknowledged cursor stands (Outbox's RoomState extends it). */
export interface AckedRoom {
  /** Last message the consumer acknowledged (what is persisted). */
  acked: Cursor
}

/** The outbox's rooms as these cursors read them (a RoomMap, room-map.ts; a Map in tests). */
type AckedRooms = Pick<ReadonlyMap<string, AckedRoom>, 'get' | 'has'> & Iterable<[string, AckedRoom]>

/**
 * One consumer's acknowledged cursors, as its commits take them: the rooms
 * whose cursor moved since the last cursor flush (CursorFlush), every cursor
 * for the release (ConsumerStore.release) and for a lost record
 * (ConsumerStore.restore), one room's for a takeover or a join told again
 * (ConsumerStore.restoreInflight, RoomSync).
 *
 * Its own module because the commits and the delivery queue (outbox.ts) meet
 * only here: an ack moves cursors, and the node's writers take them, without
 * reaching into the queue. It reads and moves `acked` in the outbox's own room
 * map, so an ack looks each entry's room up once, as the delivery did alone.
 * The rules it keeps: docs/ARCHITECTURE.md, Invariants, Cursors.
 */
export class OutboxCursors {
  readonly #rooms: AckedRooms
  /**
   * Rooms whose acknowledged cursor moved since the last takeChanged(). Made on first
   * use, as most consumers of a node sit idle: an empty Set is about 160 bytes with its table.
   */
  #changed: Set<string> | undefined
  /** The outbox closed: its release commits every cursor (see Outbox.ack). */
  #isClosed = false

  /** `rooms`: the outbox's rooms, which it adds and removes (call forget() on removing one). */
  constructor(rooms: AckedRooms) {
    this.#rooms = rooms
  }

  /** The batch in flight was acknowledged: each of its rooms' cursors moves forward to its last entry there. */
  acknowledge(entries: readonly Entry[]): void {
    for (const entry of entries) {
      const state = this.#rooms.get(entry.room)
      if (state && isAfter(entry, state.acked)) {
        state.acked = entry
        ;(this.#changed ??= new Set()).add(entry.room)
      }
    }
  }

  /** The outbox left the room: its cursor is not taken any more. */
  forget(room: string): void {
    this.#changed?.delete(room)
  }

  /** The outbox closed (its release is under way): see notWritten. */
  close(): void {
    this.#isClosed = true
  }

  /** Whether close() was called: the outbox's own flag too (Outbox.close). */
  get isClosed(): boolean {
    return this.#isClosed
  }

  /**
   * Cursors acknowledged since the last call, as `room, cursor` pairs for
   * cursor_commit; only of the rooms `isWritable` names, the others are kept
   * for a later call.
   */
  takeChanged(isWritable: (room: string) => boolean = () => true): string[] {
    const pairs: string[] = []
    const changed = this.#changed
    if (!changed) return pairs
    for (const room of changed) {
      if (!isWritable(room)) continue
      const state = this.#rooms.get(room)
      if (state) pairs.push(room, formatCursor(state.acked))
      changed.delete(room)
    }
    return pairs
  }

  /**
   * The write of a room's cursor taken by takeChanged failed: the room is
   * changed again, so the next call takes its cursor as it is by then (never
   * older than the one lost). False, and nothing changed, once the outbox is
   * closed (its release committed every cursor: see Outbox.ack) or left the room.
   */
  notWritten(room: string): boolean {
    if (this.#isClosed || !this.#rooms.has(room)) return false
    ;(this.#changed ??= new Set()).add(room)
    return true
  }

  /** Whether some acknowledged cursor was not taken yet (takeChanged). */
  get hasChanged(): boolean {
    return (this.#changed?.size ?? 0) > 0
  }

  /** Every cursor, for the final commit when the consumer leaves this node: none is changed after it. */
  takeAll(): string[] {
    this.#changed?.clear()
    return this.all()
  }

  /** Every room and its acknowledged cursor: room, cursor, room, cursor, ... */
  all(): string[] {
    const pairs: string[] = []
    for (const [room, state] of this.#rooms) pairs.push(room, formatCursor(state.acked))
    return pairs
  }

  /** Where a room's acknowledged cursor stands; undefined if the outbox is not in the room. */
  acked(room: string): Cursor | undefined {
    return this.#rooms.get(room)?.acked
  }
}

/**
 * The record of the batch in flight (Outbox.inflight), committed with the
 * cursors on release to be re-sent with the same id after a reconnect ('': none):
 * `[id, rooms, room index of each entry, first message of each room]`.
 * Each room's entries follow one another in its log from that first
 * message, which follows its acknowledged cursor (or, in the batch's first
 * room, a hole): the log can rebuild the batch exactly, and tell it from a
 * batch acknowledged since (ConsumerStore.restoreInflight, then Outbox.restoreInflight).
 */
export function inflightRecord(batch: Batch | undefined): string {
  if (batch === undefined) return ''
  const rooms: string[] = []
  const firsts: string[] = []
  const order = batch.entries.map(entry => {
    const index = rooms.indexOf(entry.room)
    if (index >= 0) return index
    firsts.push(formatCursor(entry))
    return rooms.push(entry.room) - 1
  })
  return JSON.stringify([batch.id, rooms, order, firsts])
}
