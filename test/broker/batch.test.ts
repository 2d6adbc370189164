/**
 * Batches as the outboxes cut and name them: ids derived from what a batch
 * holds, and chunks cut from each announcement's first message, so that what
 * a consumer reads again after a crash comes as the batch it had, same id.
 */
import test from 'ava'
import { batchIdOf, batchLength, markChunkEnds } from '../../src/broker/batch.js'
import { makeEntry, type Entry } from '../../src/broker/entry.js'

const entries = (room: string, first: number, count: number, ms = 1000): Entry[] =>
  Array.from({ length: count }, (_, i) => makeEntry(room, ms, first + i, `m${first + i}`, undefined))

test('a batch id depends on its rooms and seqs only: the same messages read again get the same id', t => {
  const id = batchIdOf(entries('r', 5, 3))
  t.is(batchIdOf(entries('r', 5, 3)), id, 'other objects, same messages')
  t.regex(id, /^[\w-]{16}$/)
  const others = [
    entries('r', 5, 2),
    entries('r', 6, 3),
    entries('s', 5, 3),
    entries('r', 5, 3, 1001), // the room log started again: same seqs, later ms
    [...entries('r', 5, 1), ...entries('s', 1, 2)],
    [...entries('s', 1, 2), ...entries('r', 5, 1)],
  ]
  t.is(new Set([id, ...others.map(batchIdOf)]).size, others.length + 1)
})

test('a batch id is the same on every version of the node: the first 16 characters of the base64url SHA-256 of its runs', t => {
  // A rolling upgrade sends a batch again from a newer node: its id must not change, or the client keeps both copies.
  t.is(batchIdOf([...entries('r', 5, 2, 5), ...entries('user1', 1, 1, 7)]), 'nOn2Bqik9Chbp4N7')
})

test('chunks are cut from the first message of each announcement: read again from a chunk end, the same chunks', t => {
  const live = [...entries('r', 1, 120), ...entries('r', 121, 3)]
  live[119]!.isAnnouncementEnd = true
  live[122]!.isAnnouncementEnd = true
  markChunkEnds(live, 50, 1 << 20)
  const ends = (list: Entry[]) => list.filter(e => e.isChunkEnd).map(e => e.seq)
  t.deepEqual(ends(live), [50, 100, 120, 123])

  // A log read after the ack of the first chunk: fresh objects, the announcement ends as the log marks them.
  const read = [...entries('r', 51, 70), ...entries('r', 121, 3)]
  read[69]!.isAnnouncementEnd = true
  read[72]!.isAnnouncementEnd = true
  markChunkEnds(read, 50, 1 << 20)
  t.deepEqual(ends(read), [100, 120, 123])
  // The first batch of a session is the first chunk: the batch the consumer had, with its id.
  const first = batchLength(i => read[i], 50, 1 << 20, true)
  t.is(batchIdOf(read.slice(0, first)), batchIdOf(live.slice(50, 100)))
  t.is(
    batchLength(i => read[i], 50, 1 << 20),
    50,
    'later batches merge chunks as usual',
  )
})
