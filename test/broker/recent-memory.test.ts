/**
 * What a room's recent messages really hold in memory, against what the
 * bounds count (heldBytes in recent.ts): each kept entry with the batch it starts, made
 * and sent as a node does (its JSON, its frame, the packet sent as text and
 * as the shared bytes of later sends). Measured on the heap and in buffers
 * after a full collection: the count must never be less, nor far more.
 */
import test from 'ava'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { batchIdOf, makeBatch } from '../../src/broker/batch.js'
import { makeEntry } from '../../src/broker/entry.js'
import { RecentMessages, type RecentBudget } from '../../src/broker/recent.js'
import { legacyFrame } from '../../src/gateway/delivery.js'

setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void

/** Bytes in use: the JS heap and the memory of Buffers. */
function inUse(): number {
  for (let i = 0; i < 3; i++) collect() // more than once: what a busy machine's sweeper left from the last one
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

/** Keeps `count` messages like `text` in recent windows of 4 messages a room; the bytes held and counted per entry. */
function measure(text: string, count: number): { held: number; counted: number } {
  const budget: RecentBudget = { maxBytes: Number.MAX_SAFE_INTEGER, bytes: 0 }
  const bounds = { maxMessages: 1000, maxBytes: Number.MAX_SAFE_INTEGER, budget }
  const rooms: RecentMessages[] = []
  const before = inUse()
  for (let i = 0; i < count; i++) {
    if (i % 4 === 0) rooms.push(new RecentMessages(bounds))
    // A fresh string per message, as each arrives decoded from its own announcement.
    const message = `${i} ${text}`.slice(0, text.length)
    const entry = makeEntry(`user${i >> 2}`, 1000, (i % 4) + 1, message, undefined, true)
    entry.isChunkEnd = true
    rooms[rooms.length - 1]!.append([entry])
    const batch = (entry.batch = makeBatch(batchIdOf([entry]), [entry]))
    const frame = legacyFrame(batch)
    Buffer.byteLength(frame.wire() as string) // the first send: its text, as uWS reads it
    frame.wire() // a second consumer's send: the shared bytes
  }
  const held = inUse() - before
  if (rooms.length * 4 < count) throw new Error('the windows lost entries') // and keeps `rooms` alive until here
  return { held: held / count, counted: budget.bytes / count }
}

for (const [label, text, count] of [
  ['130 ASCII characters', 'x'.repeat(130), 20_000],
  ['10,000 ASCII characters', 'y'.repeat(10_000), 2_000],
  ['1,000 CJK characters (two-byte strings, 3 UTF-8 bytes each)', '日本語'.repeat(334).slice(0, 1000), 5_000],
] as const) {
  test.serial(`a kept entry of ${label} holds no more than it is counted, and not far less`, t => {
    const { held, counted } = measure(text, count)
    t.log(`held ${held.toFixed(0)} B, counted ${counted.toFixed(0)} B per entry`)
    t.true(held <= counted, 'the bounds count at least what entries hold')
    // Not so much more that a window holds a fraction of what its bound allows (CJK: 3 UTF-8 bytes, 2 in V8).
    t.true(held >= counted / 3, 'and not so much more that the window holds a fraction of its bound')
  })
}
