import type { Batch } from './batch.js'
import type { Cursor, Incarnated } from './cursor.js'

/**
 * One message of one room, as a node holds it. Made once per announcement
 * (or log read) and shared by every local consumer of the room; its JSON form
 * is made once too.
 */
export interface Entry extends Cursor, Incarnated {
  readonly room: string
  /**
   * When its room log's incarnation began (Incarnated), 0: not known. Set by
   * a log read, or by the announcement of seq 1; the recent window passes it
   * on to the entries that follow one that has it.
   */
  since: number
  readonly message: string
  /** The message's UTF-8 bytes, counted once for the bounds in bytes (a consumer's queue, a room's recent messages). */
  readonly bytes: number
  /** The nonce of a tracked message: its ack is recorded as a receipt. Undefined for the others. */
  readonly track: string | undefined
  /** The last message of its announcement (one room's part of an append call; the log marks it too). */
  isAnnouncementEnd: boolean
  /**
   * The last entry of a chunk (markChunkEnds). A consumer's batch ends at the
   * last such entry that fits, so consumers at the same place cut the same
   * batches (and share them) however many messages each had queued.
   */
  isChunkEnd: boolean
  /** JSON.stringify(message), made on first use. */
  json: string | undefined
  /** The last batch that started with this entry: consumers in step reuse it. */
  batch: Batch | undefined
}

/**
 * What a log read returns: its entries, oldest first, and `isCut` when its
 * bytes bound (logReadMaxBytes) stopped it before the log's end: fewer
 * entries than asked for then do not mean the reader is at the end.
 */
export type LogEntries = readonly Entry[] & { readonly isCut?: true }

/**
 * Every entry is made here, every field set and in this order, so that V8
 * gives them all one hidden class and the delivery path's reads of them stay
 * monomorphic. (Fields added later, in varying order, made entries of many
 * classes: reads that missed their caches, and code compiled again each time
 * a new class showed up. docs/performance.md, section 1.)
 */
export function makeEntry(
  room: string,
  ms: number,
  seq: number,
  message: string,
  track: string | undefined,
  isAnnouncementEnd = false,
  since = 0,
): Entry {
  return {
    room,
    ms,
    seq,
    since,
    message,
    bytes: Buffer.byteLength(message),
    track,
    isAnnouncementEnd,
    isChunkEnd: false,
    json: undefined,
    batch: undefined,
  }
}
