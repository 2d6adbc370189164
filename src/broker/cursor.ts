/**
 * A position in a room log: the stream id `<ms>-<seq>` of a message. `seq` is
 * contiguous per room (seq + 1 follows seq: a gap is visible); `ms` only grows,
 * so ids order messages even across a room log that expired and started again.
 */
export interface Cursor {
  readonly ms: number
  readonly seq: number
}

/** Before every message: a consumer at this cursor reads the room from its start. */
export const ORIGIN: Cursor = { ms: 0, seq: 0 }

export function parseCursor(id: string): Cursor {
  const dash = id.indexOf('-')
  const ms = Number(id.slice(0, dash))
  const seq = Number(id.slice(dash + 1))
  return dash > 0 && Number.isSafeInteger(ms) && Number.isSafeInteger(seq) ? { ms, seq } : ORIGIN
}

export const formatCursor = (cursor: Cursor): string => `${cursor.ms}-${cursor.seq}`

/** a and b name the same message. */
export const isSame = (a: Cursor, b: Cursor): boolean => a.ms === b.ms && a.seq === b.seq

/** a is after b. */
export const isAfter = (a: Cursor, b: Cursor): boolean => a.ms > b.ms || (a.ms === b.ms && a.seq > b.seq)

/**
 * b is the message right after a in the same incarnation of the room log.
 * seq alone cannot say: a log that expired starts again at seq 1.
 */
export const isNext = (a: Cursor, b: Cursor & Incarnated): boolean =>
  b.seq === a.seq + 1 && b.ms >= a.ms && !isOlderIncarnation(a, b)

/**
 * When the incarnation of a room log that a message belongs to began: the ms
 * of its seq 1 (the head's field i), 0 when not known (a log written by an
 * older version; a message announced to a node that did not hear its log
 * begin).
 */
export interface Incarnated {
  readonly since?: number
}

/**
 * Cursor a is a message of an incarnation of the log before b's: its ms is
 * earlier than b's incarnation began. Every message of an incarnation has an
 * ms at or after its start, and a log starts again only after the ttl
 * without messages. False when that start is not known, and for ORIGIN.
 */
export const isOlderIncarnation = (a: Cursor, b: Incarnated): boolean => a.seq > 0 && a.ms < (b.since ?? 0)

/**
 * How many messages of a room lie between cursor `a` and entry `b`, the first
 * the log still has after it: b.seq - a.seq - 1 in the same incarnation of the
 * log. One that expired started again at seq 1 (ids still grow): then those
 * before b are missed, and an unknown number of the old one (null), unless b
 * is its first message (0: nothing is known to be missed). b.since tells the
 * incarnations apart where seq cannot (b.seq past a.seq, an older a).
 */
export function missedBetween(a: Cursor, b: Cursor & Incarnated): number | null {
  if (b.seq > a.seq && !isOlderIncarnation(a, b)) return b.seq - a.seq - 1
  return b.seq > 1 ? null : 0
}
