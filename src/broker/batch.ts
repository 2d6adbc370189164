import { randomBytes } from 'node:crypto'
import type { Cursor } from './cursor.js'

/**
 * One message of one room, as a node holds it. Made once per announcement and
 * shared by every local consumer of the room; its JSON form is made once too.
 */
export interface Entry extends Cursor {
  readonly room: string
  readonly message: string
  /** The nonce of a tracked message: its ack is recorded as a receipt. Undefined for the others. */
  readonly track: string | undefined
  /** JSON.stringify(message), made on first use. */
  json?: string
  /** The last batch that started with this entry: consumers in step reuse it. */
  batch?: Batch
  /**
   * The last entry of an announcement's chunk. A consumer's batch ends at the
   * last such entry that fits, so consumers at the same place cut the same
   * batches (and share them) however many messages each had queued.
   */
  isChunkEnd?: boolean
}

/**
 * A delivery frame: the JSON-RPC request `publish` with the batch's messages,
 * sent to a consumer and awaiting its `{"result":"OK"}`. The same Batch (same
 * id, same bytes) goes to every consumer whose next messages are these, and a
 * re-sent batch keeps its id, so snapper-consumer drops it if it had it.
 */
export interface Batch {
  readonly id: string
  readonly entries: readonly Entry[]
  /** One of the entries is tracked: its ack records receipts (for the others it costs nothing). */
  readonly hasTracked: boolean
  /** The JSON-RPC request text. */
  readonly frame: string
  /** Transport-specific encodings, each made by the first session that sends it in that format. */
  encoded?: unknown
  /** The `codec=json` frame (with rooms and seqs). */
  jsonFrame?: unknown
  /** The `codec=msgpack` frame. */
  msgpackFrame?: unknown
}

/**
 * Batch ids are unique across nodes and restarts (`<process tag>:<counter>`),
 * so a consumer that moves to another node never sees a new batch under the
 * id of its last one — which its client would drop as a duplicate.
 */
export class BatchIds {
  readonly #tag = randomBytes(4).toString('base64url')
  #next = 0

  next(): string {
    return `${this.#tag}:${(++this.#next).toString(36)}`
  }
}

export function makeBatch(id: string, entries: readonly Entry[]): Batch {
  // One join, not a string grown 50 times (each step a rope V8 must flatten before sending).
  const jsons = new Array<string>(entries.length)
  let hasTracked = false
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    jsons[i] = entry.json ??= JSON.stringify(entry.message)
    if (entry.track !== undefined) hasTracked = true
  }
  const params = jsons.join(',')
  return {
    id,
    entries,
    hasTracked,
    frame: `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"publish","params":[${params}]}`,
  }
}

/** The entries run in one room without a gap, so a batch of them is the same for everyone. */
export function isOneRun(entries: readonly Entry[]): boolean {
  const first = entries[0]
  if (!first) return false
  for (let i = 1; i < entries.length; i++) {
    const entry = entries[i]!
    if (entry.room !== first.room || entry.seq !== first.seq + i) return false
  }
  return true
}

/**
 * How many entries, from the first, make one batch: at most `maxMessages`, and
 * no more than `maxBytes` of messages (counted in UTF-16 units, which is the
 * byte count for ASCII), but always at least one; and, if one of them ends an
 * announcement's chunk, up to the last such one (see Entry.isChunkEnd).
 */
export function batchLength(
  at: (index: number) => Entry | undefined,
  maxMessages: number,
  maxBytes: number,
): number {
  let bytes = 0
  let count = 0
  let chunkEnds = 0
  for (let entry = at(0); entry !== undefined && count < maxMessages; entry = at(count)) {
    bytes += entry.message.length
    if (count > 0 && bytes > maxBytes) break
    count++
    if (entry.isChunkEnd) chunkEnds = count
  }
  return chunkEnds > 0 ? chunkEnds : count
}
