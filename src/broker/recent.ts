import type { Entry } from './entry.js'
import { isAfter, isNext, type Cursor } from './cursor.js'

/** Bytes all rooms' recent messages may hold together on a node (heldBytes of each). */
export interface RecentBudget {
  readonly maxBytes: number
  bytes: number
}

/** The bounds of a room's window: one object for all the rooms of a node (Fanout), not three fields each. */
export interface RecentBounds {
  /** Messages a room keeps; 0 keeps none. */
  readonly maxMessages: number
  /** Bytes (heldBytes) a room's messages hold at most. */
  readonly maxBytes: number
  /** The node's, shared by its rooms. */
  readonly budget: RecentBudget
}

/**
 * The memory an entry kept here holds, as counted against the bounds: five
 * forms of its text (the message, its JSON, the frame of the batch it
 * starts, that frame's packet, and the packet's bytes that sends after the
 * first share) and about 1.5 KB of objects around them (the entry, its
 * batch, their ids). Counted from the UTF-8 bytes, never fewer than V8 keeps
 * for a text. A batch also sent to codec=json or msgpack sessions keeps one
 * more form for each. Measured in test/broker/recent-memory.test.ts.
 */
export function heldBytes(entry: Entry): number {
  return 5 * entry.bytes + ENTRY_OVERHEAD_BYTES
}

const ENTRY_OVERHEAD_BYTES = 1536

/** The empty window of every room that has had no message since it was made or cleared (never written). */
const NO_ENTRIES: Entry[] = Object.freeze([]) as unknown as Entry[]

/**
 * The last messages announced in one room, as the very Entry objects its
 * local members were offered: contiguous, oldest first, bounded in count and
 * in the bytes they hold (heldBytes; the node's budget is shared by its rooms).
 *
 * A member that fell behind (its queue was full) or (re)joined reads from
 * here instead of Redis when its cursor is inside the window: no round trip,
 * and it gets the shared entries, so its batches are the ones the members in
 * step already made and encoded.
 *
 *   [head … end)   ◀── append(announced entries); a gap (lost announcement,
 *    ▲ trimmed         a new log incarnation) starts the window again
 *    └── after(cursor): the entries after it, if the cursor is in the window
 *        or right before it (the last entry dropped, the anchor; else only
 *        if the first's log incarnation is known: an older one's cursor can
 *        have the seq right before it)
 *
 * An empty window may be anchored at the room's head, read once the node
 * hears the room: every message after it will be appended here, so a member
 * at that head reads nothing from Redis (a consumer that connects up to date).
 * A window its bounds emptied is anchored at the last entry it dropped: what
 * is appended next must follow it, or the window starts again (a gap).
 */
export class RecentMessages {
  readonly #bounds: RecentBounds
  /** NO_ENTRIES until the first append: most rooms of a node (a consumer's own) never hold a message. */
  #entries: Entry[] = NO_ENTRIES
  #head = 0
  #bytes = 0
  /**
   * The message right before the window's first, where known: the anchor it
   * started from, or the last entry dropped (ms -1: not known). In an empty
   * window, the message every later append must follow. Two numbers, not the
   * entry: that would keep its texts alive; nor a cursor object, 40 bytes a
   * room (docs/performance.md, section 1, item 23).
   */
  #beforeMs = -1
  #beforeSeq = 0

  constructor(bounds: RecentBounds) {
    this.#bounds = bounds
  }

  get size(): number {
    return this.#entries.length - this.#head
  }

  /** Entries just announced, in order. */
  append(entries: readonly Entry[]): void {
    const { maxMessages, maxBytes, budget } = this.#bounds
    if (entries.length === 0 || maxMessages === 0) return
    const newest = this.size > 0 ? this.#entries[this.#entries.length - 1] : undefined
    const last = newest ?? this.#before()
    let start = 0
    // Announced before an empty window's anchor was read, but heard after it: the window starts past them.
    if (newest === undefined && last !== undefined)
      while (start < entries.length && !isAfter(entries[start]!, last)) start++
    if (start === entries.length) return
    if (last !== undefined && !isNext(last, entries[start]!)) this.clear() // a gap: what came before is not followed by this
    // What follows the window in order is of its log's incarnation: the start it knows goes on.
    const since = this.size > 0 ? newest!.since : 0
    if (this.#entries === NO_ENTRIES) this.#entries = []
    for (let i = start; i < entries.length; i++) {
      const entry = entries[i]!
      if (entry.since === 0) entry.since = since
      const held = heldBytes(entry)
      this.#entries.push(entry)
      this.#bytes += held
      budget.bytes += held
    }
    // Over the node's budget, the room that grows gives back half its window, and more while the node still is.
    const keep = budget.bytes > budget.maxBytes ? Math.floor(this.size / 2) : maxMessages
    while (this.size > 0 && (this.size > keep || this.#bytes > maxBytes || budget.bytes > budget.maxBytes))
      this.#drop()
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
  }

  /**
   * Up to `count` entries right after `cursor`, shared; [] if the cursor is the
   * last entry announced; undefined if the window does not reach back to it
   * (then the log must be read).
   */
  after(cursor: Cursor, count: number): Entry[] | undefined {
    const size = this.size
    if (size === 0) return this.#beforeMs >= 0 && this.#isBefore(cursor) ? [] : undefined
    const first = this.#entries[this.#head]!
    let from: number
    // Right before the window: only if that is sure to be the same log, not an older incarnation of it.
    const isBefore =
      this.#beforeMs >= 0
        ? this.#isBefore(cursor)
        : isNext(cursor, first) && (first.since > 0 || cursor.seq === 0)
    if (isBefore) from = 0
    else {
      const index = cursor.seq - first.seq
      const entry = index >= 0 && index < size ? this.#entries[this.#head + index] : undefined
      if (entry === undefined || entry.seq !== cursor.seq || entry.ms !== cursor.ms) return undefined
      from = index + 1
    }
    return this.#entries.slice(this.#head + from, this.#head + Math.min(size, from + count))
  }

  /**
   * The room's newest message is `head`, read after the node began to hear
   * the room: an empty window starts there. A window with entries keeps them
   * (they reach back further, or announcements up to `head` are on their way).
   */
  anchor(head: Cursor): void {
    if (this.size === 0 && this.#bounds.maxMessages > 0) this.#setBefore(head)
  }

  /** Forgets every entry (announcements may have been lost: the window could miss its newest). */
  clear(): void {
    this.#beforeMs = -1
    this.#bounds.budget.bytes -= this.#bytes
    this.#entries = NO_ENTRIES
    this.#head = 0
    this.#bytes = 0
  }

  /** The message right before the window, if known (a cursor made for the moment: the window is empty). */
  #before(): Cursor | undefined {
    return this.#beforeMs >= 0 ? { ms: this.#beforeMs, seq: this.#beforeSeq } : undefined
  }

  #isBefore(cursor: Cursor): boolean {
    return cursor.ms === this.#beforeMs && cursor.seq === this.#beforeSeq
  }

  #setBefore(cursor: Cursor): void {
    this.#beforeMs = cursor.ms
    this.#beforeSeq = cursor.seq
  }

  #drop(): void {
    const entry = this.#entries[this.#head]!
    this.#setBefore(entry)
    this.#entries[this.#head++] = undefined as unknown as Entry // let it go before compaction
    const held = heldBytes(entry)
    this.#bytes -= held
    this.#bounds.budget.bytes -= held
  }
}
