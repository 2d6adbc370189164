/**
 * A room's recent messages in memory (RecentMessages) and the batch cut at
 * announcement chunk ends (batchLength): pure, no Redis.
 */
import test from 'ava'
import { batchLength } from '../../src/broker/batch.js'
import { makeEntry, type Entry } from '../../src/broker/entry.js'
import { heldBytes, RecentMessages, type RecentBudget } from '../../src/broker/recent.js'

const entry = (seq: number, ms = 1000, message = `m${seq}`): Entry =>
  makeEntry('r', ms, seq, message, undefined)
const run = (from: number, to: number, ms = 1000): Entry[] => {
  const entries: Entry[] = []
  for (let seq = from; seq <= to; seq++) entries.push(entry(seq, ms))
  return entries
}
const budget = (maxBytes = 1 << 20): RecentBudget => ({ maxBytes, bytes: 0 })

test('after() gives the shared entries after a cursor inside the window, [] at its end', t => {
  const recent = new RecentMessages({ maxMessages: 100, maxBytes: 1 << 20, budget: budget() })
  const entries = run(1, 10)
  recent.append(entries)
  t.is(recent.after({ ms: 1000, seq: 4 }, 3)![0], entries[4], 'the very objects, not copies')
  t.deepEqual(
    recent.after({ ms: 1000, seq: 4 }, 3)!.map(e => e.seq),
    [5, 6, 7],
  )
  t.deepEqual(recent.after({ ms: 900, seq: 0 }, 100)!.length, 10, 'the cursor right before the window')
  t.deepEqual(recent.after({ ms: 1000, seq: 10 }, 5), [], 'up to date')
})

test('after() is undefined when the window does not reach back to the cursor', t => {
  const recent = new RecentMessages({ maxMessages: 5, maxBytes: 1 << 20, budget: budget() })
  recent.append(run(1, 10))
  t.is(recent.size, 5)
  t.is(recent.after({ ms: 1000, seq: 2 }, 5), undefined, 'trimmed away')
  t.deepEqual(
    recent.after({ ms: 1000, seq: 5 }, 5)!.map(e => e.seq),
    [6, 7, 8, 9, 10],
  )
  t.is(recent.after({ ms: 999, seq: 7 }, 5), undefined, 'same seq, another log incarnation')
  t.is(
    new RecentMessages({ maxMessages: 5, maxBytes: 1 << 20, budget: budget() }).after({ ms: 0, seq: 0 }, 5),
    undefined,
    'empty',
  )
})

test('a gap starts the window again; clear() empties it', t => {
  const recent = new RecentMessages({ maxMessages: 100, maxBytes: 1 << 20, budget: budget() })
  recent.append(run(1, 3))
  recent.append(run(7, 8)) // 4..6 never announced here
  t.is(recent.size, 2)
  t.is(recent.after({ ms: 1000, seq: 3 }, 5), undefined)
  recent.append(run(1, 2, 2000)) // the log started again (expired)
  t.deepEqual(
    recent.after({ ms: 0, seq: 0 }, 5)!.map(e => e.ms),
    [2000, 2000],
  )
  recent.clear()
  t.is(recent.size, 0)
})

test('a cursor of an older incarnation of the log, right before the window by seq, is not served from it', t => {
  // The new log began at 2000 (its seq 1 announced here): a window of 3 keeps 4..6.
  const began = run(1, 6, 2000).map(e => ((e.since = 2000), e))
  const known = new RecentMessages({ maxMessages: 3, maxBytes: 1 << 20, budget: budget() })
  known.append(began.slice(0, 2))
  known.append(began.slice(2).map(e => ((e.since = 0), e))) // announced later: the window passes its start on
  t.deepEqual(
    began.map(e => e.since),
    [2000, 2000, 2000, 2000, 2000, 2000],
  )
  t.is(known.after({ ms: 1000, seq: 3 }, 5), undefined, 'the old log at seq 3: read from Redis')
  t.deepEqual(
    known.after({ ms: 2000, seq: 3 }, 5)!.map(e => e.seq),
    [4, 5, 6],
    'the entry dropped last',
  )

  // A window that began mid-log (when its log began is not known) serves only cursors inside it.
  const unknown = new RecentMessages({ maxMessages: 3, maxBytes: 1 << 20, budget: budget() })
  unknown.append(run(4, 6, 2000))
  t.is(unknown.after({ ms: 1000, seq: 3 }, 5), undefined)
  t.is(unknown.after({ ms: 2000, seq: 3 }, 5), undefined, 'maybe the same log: the read will say')
  t.deepEqual(
    unknown.after({ ms: 2000, seq: 4 }, 5)!.map(e => e.seq),
    [5, 6],
  )
})

test('bounds: bytes held per room, and a node budget shared by rooms', t => {
  const ten = (from: number, to: number): Entry[] =>
    Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, 1000, 'x'.repeat(10)))
  const held = heldBytes(ten(1, 1)[0]!) // what one such entry holds, as counted
  t.is(held, 5 * 10 + 1536)
  const shared = budget(30 * held)
  const a = new RecentMessages({ maxMessages: 1000, maxBytes: 10 * held, budget: shared })
  a.append(ten(1, 20))
  t.is(a.size, 10, '10 entries fit in a room')
  t.is(shared.bytes, 10 * held)
  const b = new RecentMessages({ maxMessages: 1000, maxBytes: 100 * held, budget: shared })
  b.append(ten(1, 30)) // 40 entries with a's: over the budget, b gives back half
  t.is(b.size, 15)
  t.is(shared.bytes, 25 * held)
  const c = new RecentMessages({ maxMessages: 1000, maxBytes: 100 * held, budget: shared })
  c.append(ten(1, 20)) // 45 with the others': half of c is still 35, so c gives back more
  t.is(shared.bytes, 30 * held, 'never more than the budget after an append')
  t.is(c.size, 5)
  a.clear()
  b.clear()
  c.clear()
  t.is(shared.bytes, 0)
})

test('batchLength cuts after the last chunk end that fits, else at the bounds', t => {
  const entries = run(1, 120)
  for (const end of [30, 80, 100]) entries[end - 1]!.isChunkEnd = true
  const from = (start: number) => (i: number) => entries[start + i]
  t.is(batchLength(from(0), 50, 1 << 20), 30)
  t.is(batchLength(from(30), 50, 1 << 20), 50, 'the chunk end at 80 is the 50th')
  t.is(batchLength(from(35), 50, 1 << 20), 45, 'up to 80')
  t.is(batchLength(from(100), 50, 1 << 20), 20, 'no chunk end: all that is there')
  t.is(batchLength(from(0), 50, 10), 5, 'bytes first: m1..m5 is 10 bytes, m6 passes')
  const log = run(1, 60) // read from Redis: no chunk ends
  t.is(
    batchLength(i => log[i], 50, 1 << 20),
    50,
  )
})

test('an empty window anchored at the head: a member there reads nothing; late and later announcements line up', t => {
  const recent = new RecentMessages({ maxMessages: 100, maxBytes: 1 << 20, budget: budget() })
  const head = { ms: 1000, seq: 5 }
  t.is(recent.after(head, 10), undefined, 'not anchored: the log must be read')
  recent.anchor(head)
  t.deepEqual(recent.after(head, 10), [], 'at the head: nothing to read')
  t.is(recent.after({ ms: 1000, seq: 4 }, 10), undefined, 'behind the head: the log must be read')
  recent.append(run(4, 5)) // announced before the head was read, heard after: already known
  t.is(recent.size, 0)
  t.deepEqual(recent.after(head, 10), [], 'still anchored')
  recent.append(run(6, 7))
  t.deepEqual(
    recent.after(head, 10)!.map(e => e.seq),
    [6, 7],
  )
  const other = new RecentMessages({ maxMessages: 100, maxBytes: 1 << 20, budget: budget() })
  other.anchor(head)
  other.append(run(8, 9)) // 6 and 7 never heard: a gap
  t.is(other.after(head, 10), undefined)
  other.clear()
  other.anchor(head)
  other.clear()
  t.is(other.after(head, 10), undefined, 'clear() forgets the anchor')
  const filled = new RecentMessages({ maxMessages: 100, maxBytes: 1 << 20, budget: budget() })
  filled.append(run(1, 3))
  filled.anchor(head) // announcements 4 and 5 are on their way: the window keeps what it has
  t.is(filled.after(head, 10), undefined)
  t.is(filled.after({ ms: 1000, seq: 3 }, 10)!.length, 0)
})

test('a window the node budget emptied: the next announcement must follow its last message, else the log is read', t => {
  const node = budget(10_000)
  const recent = new RecentMessages({ maxMessages: 100, maxBytes: 1 << 20, budget: node })
  node.bytes = node.maxBytes // the other rooms of the node hold all of it
  recent.append(run(1, 2))
  t.is(recent.size, 0, 'the room gave back all it had')
  t.deepEqual(recent.after({ ms: 1000, seq: 2 }, 10), [], 'a member at its last message is up to date')
  t.is(recent.after({ ms: 1000, seq: 1 }, 10), undefined, 'one behind it must read the log')
  node.bytes = 0 // the other rooms let go
  recent.append(run(4, 5)) // 3's announcement never came
  t.is(recent.after({ ms: 1000, seq: 2 }, 10), undefined, '3 is only in the log')
  t.deepEqual(
    recent.after({ ms: 1000, seq: 4 }, 10)!.map(e => e.seq),
    [5],
  )
  const contiguous = new RecentMessages({ maxMessages: 100, maxBytes: 1 << 20, budget: node })
  node.bytes = node.maxBytes
  contiguous.append(run(1, 2))
  node.bytes = 0
  contiguous.append(run(3, 4))
  t.deepEqual(
    contiguous.after({ ms: 1000, seq: 2 }, 10)!.map(e => e.seq),
    [3, 4],
    'what follows its last message: read from memory',
  )
})
