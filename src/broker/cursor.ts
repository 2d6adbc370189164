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

/** b is the message right after a in the same incarnation of the room log. */
export const isNext = (a: Cursor, b: Cursor): boolean => b.seq === a.seq + 1 && b.ms >= a.ms
