/**
 * How large a call's frame is against the broker's maxFrameBytes, and how a
 * publish batch is split into params that each fit in one frame.
 */
import type { Publication } from './types.js'

/** Bytes of a publish frame besides its pairs: the JSON-RPC envelope and the RESP header. */
const FRAME_OVERHEAD_BYTES = 128

/** Whether a call's JSON takes more than `maxBytes` in UTF-8. */
export function isLargerThan(payload: string, maxBytes: number): boolean {
  // UTF-8 takes 3 bytes per UTF-16 unit at most: most calls fit without measuring.
  return payload.length * 3 > maxBytes && Buffer.byteLength(payload) > maxBytes
}

/** Splits a batch into publish params that each fit in a frame of `maxFrameBytes`, in order. */
export function framesOf(batch: readonly Publication[], maxFrameBytes: number): (readonly Publication[])[] {
  // JSON escapes a character into 6 bytes at most: most batches fit without measuring each pair.
  let length = 0
  for (const [room, message] of batch) length += room.length + message.length + 8
  if (length * 6 + FRAME_OVERHEAD_BYTES <= maxFrameBytes) return [batch]
  const chunks: Publication[][] = []
  let chunk: Publication[] = []
  let bytes = FRAME_OVERHEAD_BYTES
  for (const pair of batch) {
    const size = 8 + Buffer.byteLength(JSON.stringify(pair))
    if (chunk.length > 0 && bytes + size > maxFrameBytes) {
      chunks.push(chunk)
      chunk = []
      bytes = FRAME_OVERHEAD_BYTES
    }
    chunk.push(pair)
    bytes += size
  }
  if (chunk.length > 0) chunks.push(chunk)
  return chunks
}
