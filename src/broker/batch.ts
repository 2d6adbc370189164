import { hash, randomBytes } from 'node:crypto'
import type { Entry } from './entry.js'

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
  /** Transport-specific encodings, each made by the first session that sends it in that format (set in makeBatch: one hidden class). */
  encoded: unknown
  /** The `codec=json` frame (with rooms and seqs). */
  jsonFrame: unknown
  /** The `codec=msgpack` frame. */
  msgpackFrame: unknown
}

/**
 * A batch's id, derived from what it holds: each run of one room's
 * consecutive messages, by room, ms and seq of its first and its length. The
 * same messages make the same id on any node, before and after a crash, so
 * a client that drops a batch whose id it has just seen drops a copy sent
 * again; different messages make different ids (a 96-bit hash).
 */
export function batchIdOf(entries: readonly Entry[]): string {
  // One string hashed at once: crypto.hash is the same SHA-256 without a Hash object (a third of the time).
  let runs = ''
  for (let start = 0; start < entries.length;) {
    const first = entries[start]!
    let end = start + 1
    while (
      end < entries.length &&
      entries[end]!.room === first.room &&
      entries[end]!.seq === first.seq + end - start
    )
      end++
    runs += `${JSON.stringify(first.room)} ${first.ms} ${first.seq} ${end - start}\n`
    start = end
  }
  return hash('sha256', runs, 'base64url').slice(0, 16)
}

/**
 * Ids of the batches a client answered with an error, sent again: unique
 * across nodes and restarts (`<process tag>:<counter>`), unlike what
 * batchIdOf would give, since the client drops an id it has just seen.
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
    encoded: undefined,
    jsonFrame: undefined,
    msgpackFrame: undefined,
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
 * no more than `maxBytes` of messages, but always at least one; and, if one of
 * them ends a chunk, up to the last such one (see Entry.isChunkEnd), or with
 * `firstChunkOnly` the first. Bytes are counted in UTF-16 units (the byte
 * count for ASCII), as every version has cut them: a batch sent again after a
 * takeover must be cut as it was, to keep its id.
 */
export function batchLength(
  at: (index: number) => Entry | undefined,
  maxMessages: number,
  maxBytes: number,
  firstChunkOnly = false,
): number {
  let bytes = 0
  let count = 0
  let chunkEnds = 0
  for (let entry = at(0); entry !== undefined && count < maxMessages; entry = at(count)) {
    bytes += entry.message.length
    if (count > 0 && bytes > maxBytes) break
    count++
    if (entry.isChunkEnd) {
      chunkEnds = count
      if (firstChunkOnly) break
    }
  }
  return chunkEnds > 0 ? chunkEnds : count
}

/**
 * Marks where the messages of a room are cut into chunks: greedily from the
 * first message of each announcement, as batchLength cuts a batch, and at
 * each announcement's end. The log marks the last message of each
 * announcement (room_append-4n.lua), so a log read marks the same chunks in
 * what it read (from the cursor of a batch's end on): a consumer that reads
 * again what it had been sent live (a crash, a takeover) gets the same
 * batches, with the same ids.
 */
export function markChunkEnds(entries: readonly Entry[], maxMessages: number, maxBytes: number): void {
  let count = 0
  let bytes = 0
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    if (count > 0 && (count === maxMessages || bytes + entry.message.length > maxBytes)) {
      entries[i - 1]!.isChunkEnd = true
      count = bytes = 0
    }
    count++
    bytes += entry.message.length
    if (entry.isAnnouncementEnd) {
      entry.isChunkEnd = true
      count = bytes = 0
    }
  }
}
