/**
 * One consumer's outbox against a node in memory (test/helpers/outbox-host.ts):
 * the behind → reading → live transitions of a room, the merge of log reads
 * with announcements, acks and cursors, read failures. Against Redis, the
 * same paths run in node.test.ts.
 */
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { makeBatch, type Batch } from '../../src/broker/batch.js'
import { missedBetween, ORIGIN } from '../../src/broker/cursor.js'
import { inflightRecord } from '../../src/broker/outbox-cursors.js'
import { batchMessages, FakeHost, FakeSink, settle, twoRoomOutbox } from '../helpers/outbox-host.js'
import { eventually } from '../helpers/eventually.js'

const range = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `m${from + i}`)

test('a room added at its cursor reads the log from there, then sends what is announced, one batch in flight', async t => {
  const host = new FakeHost()
  host.append('r', 'a', 'b')
  const outbox = host.outbox()
  const sink = outbox.sink!
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  t.deepEqual(batchMessages(sink), [['a', 'b']])
  t.is(host.reads, 1)

  outbox.offer('r', host.append('r', 'c', 'd', 'e'))
  t.is(sink.batches.length, 1, 'nothing more while a batch is in flight')
  t.is(outbox.queued, 3)
  t.true(outbox.ack(sink.batches[0]!.id))
  t.deepEqual(batchMessages(sink), [
    ['a', 'b'],
    ['c', 'd', 'e'],
  ])
  t.is(host.reads, 1, 'live: announcements need no read')
  t.is(host.acknowledgedMessages, 2)
})

test('announcements during a log read are held, then merged: each message once, in order', async t => {
  for (const answer of ['answer', 'answerNow'] as const) {
    const host = new FakeHost({ batchMaxMessages: 10 })
    host.autoAnswer = false
    host.append('r', 'a', 'b')
    const outbox = host.outbox()
    outbox.addRoom('r', ORIGIN)
    outbox.resync('r')
    outbox.offer('r', host.append('r', 'c'))
    outbox.offer('r', host.append('r', 'd'))
    t.is(outbox.sink!.batches.length, 0, 'reading: announcements wait for the read')
    // The read may have been served before or after the announced messages were appended.
    host.pending.shift()![answer]()
    await settle()
    t.deepEqual(batchMessages(outbox.sink!), [['a', 'b']], `${answer}: the first batch is the first chunk`)
    outbox.sink!.ack()
    t.deepEqual(
      batchMessages(outbox.sink!),
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
      answer,
    )
    outbox.offer('r', host.append('r', 'e'))
    outbox.sink!.ack()
    t.deepEqual(outbox.sink!.messages, ['a', 'b', 'c', 'd', 'e'], `${answer}: live after the read`)
  }
})

test('a gap in the announcements (one was lost) is read from the log', async t => {
  const host = new FakeHost()
  const outbox = host.outbox('c1', new FakeSink(true))
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  outbox.offer('r', host.append('r', 'a'))
  host.append('r', 'b', 'c') // never announced
  const reads = host.reads
  outbox.offer('r', host.append('r', 'd'))
  await settle()
  t.is(host.reads, reads + 1)
  t.deepEqual(outbox.sink!.messages, ['a', 'b', 'c', 'd'])
  outbox.offer('r', host.logs.get('r')!.slice(-2)) // c and d again
  outbox.offer('r', host.append('r', 'e'))
  await settle()
  t.deepEqual(outbox.sink!.messages, ['a', 'b', 'c', 'd', 'e'], 'what it had already is skipped')
})

test('a full queue leaves the room behind: announcements are ignored, the rest is read once acks drain it', async t => {
  const host = new FakeHost({ maxQueue: 4, batchMaxMessages: 2 })
  const outbox = host.outbox()
  const sink = outbox.sink!
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  const reads = host.reads
  outbox.offer('r', host.append('r', ...range(10)))
  outbox.offer('r', host.append('r', ...range(2, 10)))
  t.is(outbox.queued, 2, 'four taken, two of them in flight; the rest stays in the log')
  t.is(host.reads, reads, 'behind: no read while the queue is full')
  sink.autoAck = true
  sink.ack()
  for (let i = 0; i < 20 && sink.messages.length < 12; i++) await settle()
  t.deepEqual(sink.messages, range(12))
  t.true(sink.maxQueued <= 4)
  t.true(host.reads > reads, 'the rest came from the log')
})

/**
 * Messages of 10 bytes against maxQueueBytes 25: two are taken (one sent, one
 * queued), the rest read from the log as acks drain the queue.
 */
async function takesTwoOfTenBytes(t: ExecutionContext, messages: readonly string[]): Promise<void> {
  const host = new FakeHost({ maxQueueBytes: 25, batchMaxMessages: 1 })
  const outbox = host.outbox()
  const sink = outbox.sink!
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  outbox.offer('r', host.append('r', ...messages))
  t.deepEqual(
    [sink.batches.length, outbox.queued, outbox.queuedBytes],
    [1, 1, 10],
    'two taken: a third would pass 25 bytes',
  )
  sink.autoAck = true
  sink.ack()
  for (let i = 0; i < 20 && sink.messages.length < messages.length; i++) await settle()
  t.deepEqual(sink.messages, messages, 'the rest came from the log, in order')
  t.true(sink.maxQueuedBytes <= 25)
}

test('a queue is bounded by bytes too: past maxQueueBytes the room is behind, and one message always fits', async t => {
  const tens = Array.from({ length: 8 }, (_, i) => String(i).repeat(10))
  await takesTwoOfTenBytes(t, tens)

  const host = new FakeHost({ maxQueueBytes: 25, batchMaxMessages: 1 })
  const big = host.outbox('c2', new FakeSink(true))
  big.addRoom('big', ORIGIN)
  big.resync('big')
  await settle()
  big.offer('big', host.append('big', 'x'.repeat(100), 'y'.repeat(100)))
  for (let i = 0; i < 20 && big.sink!.messages.length < 2; i++) await settle()
  t.deepEqual(big.sink!.messages, ['x'.repeat(100), 'y'.repeat(100)])
})

test('maxQueueBytes counts UTF-8 bytes, not characters', async t => {
  const euros = Array.from({ length: 6 }, (_, i) => `${i}€€€`) // 4 characters, 10 bytes: counted in characters, six would fit
  await takesTwoOfTenBytes(t, euros)
})

test('reading: more announcements than a queue holds are dropped and read from the log instead', async t => {
  const host = new FakeHost({ maxQueue: 4, batchMaxMessages: 10 })
  host.autoAnswer = false
  const outbox = host.outbox('c1', new FakeSink(true))
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  outbox.offer('r', host.append('r', ...range(3)))
  outbox.offer('r', host.append('r', ...range(3, 3)))
  host.autoAnswer = true
  host.pending.shift()!.answer() // the log before any of them
  for (let i = 0; i < 10 && outbox.sink!.messages.length < 6; i++) await settle()
  t.deepEqual(outbox.sink!.messages, range(6))
})

test('acks: only the batch in flight; acknowledged cursors are handed out once', async t => {
  const { host, outbox } = await twoRoomOutbox()
  const [first] = outbox.sink!.batches
  t.false(outbox.ack('not-the-id'))
  t.deepEqual(outbox.cursors.takeChanged(), [])
  t.true(outbox.ack(first!.id))
  t.false(outbox.ack(first!.id), 'that id is not in flight any more')
  t.deepEqual(outbox.cursors.takeChanged(), ['r', '1-2'])
  t.deepEqual(outbox.cursors.takeChanged(), [])
  t.true(outbox.sink!.ack())
  t.deepEqual(outbox.cursors.takeChanged(), ['s', '1-1'])
  t.deepEqual(outbox.cursors.takeAll(), ['r', '1-2', 's', '1-1'])
  t.is(host.acknowledgedMessages, 3)
})

test('a failed log read is reported and tried again', async t => {
  const host = new FakeHost()
  host.failReads = 1
  host.append('r', 'a')
  const outbox = host.outbox()
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  t.deepEqual(host.readFailures, ['r'])
  t.is(outbox.sink!.batches.length, 0)
  await eventually(() => outbox.sink!.messages.length > 0, { what: 'the read to be retried' })
  t.deepEqual(outbox.sink!.messages, ['a'])
})

test('a throw out of the read retry (a bug) is logged, not thrown out of the timer', async t => {
  const host = new FakeHost()
  const lines: Record<string, unknown>[] = []
  host.log = pino({ level: 'error' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  host.failReads = 1
  const outbox = host.outbox()
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  host.read = () => {
    throw new Error('bug in read')
  }
  await eventually(() => lines.length > 0, { what: 'the retry to fail' })
  t.like(lines[0], {
    site: 'log read retry',
    msg: 'handler failed unexpectedly',
    err: { message: 'bug in read' },
  })
})

test('members in step share the batch of one announcement: made once, whoever sends it', async t => {
  const host = new FakeHost()
  const [a, b, late] = ['a', 'b', 'late'].map(id => host.outbox(id))
  for (const outbox of [a!, b!, late!]) {
    outbox.addRoom('r', ORIGIN)
    outbox.resync('r')
  }
  await settle()
  const lateSink = late!.sink!
  late!.sink = undefined // its session is not open yet: the announcement waits in its queue
  const chunk = host.append('r', 'x', 'y')
  let shared: Batch | undefined
  for (const outbox of [a!, b!, late!]) outbox.offer('r', chunk, () => (shared ??= outbox.batchOf(chunk)))
  t.is(a!.sink!.batches[0], b!.sink!.batches[0])
  t.is(lateSink.batches.length, 0)
  late!.sink = lateSink
  late!.resend()
  t.is(lateSink.batches[0], a!.sink!.batches[0], 'queued, then cut as the same batch')
})

test('the batch in flight at a disconnect goes again under its id; the log is read after it', async t => {
  const host = new FakeHost()
  host.append('r', 'a', 'b')
  const before = host.outbox()
  before.addRoom('r', ORIGIN)
  before.resync('r')
  await settle()
  const unacked = before.sink!.batches[0]!
  const [a] = host.logs.get('r')!
  t.deepEqual(JSON.parse(inflightRecord(before.inflight)), [
    unacked.id,
    ['r'],
    [0, 0],
    [`${a!.ms}-${a!.seq}`],
  ])
  before.close()
  host.append('r', 'c')

  const after = host.outbox() // another node: rebuilt from the record and the log (ConsumerStore)
  after.addRoom('r', ORIGIN)
  after.restoreInflight(makeBatch(unacked.id, host.logs.get('r')!.slice(0, 2)))
  after.resync('r')
  await settle()
  after.resend()
  t.is(after.sink!.batches[0]!.id, unacked.id)
  after.sink!.ack()
  t.deepEqual(after.sink!.messages, ['a', 'b', 'c'])
})

test('a room removed drops its queued messages; the other rooms keep theirs', async t => {
  const host = new FakeHost({ batchMaxMessages: 1 })
  const outbox = host.outbox()
  for (const room of ['r', 's']) {
    outbox.addRoom(room, ORIGIN)
    outbox.resync(room)
  }
  await settle()
  outbox.offer('r', host.append('r', 'r1', 'r2'))
  outbox.offer('s', host.append('s', 's1'))
  outbox.removeRoom('r')
  t.false(outbox.hasRoom('r'))
  outbox.offer('r', host.append('r', 'r3'))
  outbox.sink!.autoAck = true
  outbox.sink!.ack()
  await settle()
  t.deepEqual(outbox.sink!.messages, ['r1', 's1'])
})

test('a closed outbox sends nothing and reads nothing', async t => {
  const host = new FakeHost()
  host.append('r', 'a')
  const outbox = host.outbox()
  const sink = outbox.sink!
  outbox.addRoom('r', ORIGIN)
  outbox.close()
  outbox.resync('r')
  outbox.offer('r', host.append('r', 'b'))
  await settle()
  t.is(host.reads, 0)
  t.is(sink.batches.length, 0)
})

test('messages trimmed from the log before a consumer read them: a gap notice with their count, then what is left', async t => {
  const host = new FakeHost()
  host.append('r', ...range(10))
  host.trim('r', 4)
  const outbox = host.outbox()
  const sink = outbox.sink!
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  t.deepEqual(sink.gaps, [{ room: 'r', missed: 6, before: 0 }])
  t.deepEqual(host.holesFound, [{ room: 'r', missed: 6 }])
  sink.ack()
  t.deepEqual(sink.messages, range(4, 6))
  t.is(sink.gaps.length, 1, 'once')
})

test('a hole after a full queue: the batch before it ends there, the notice goes between the two', async t => {
  const host = new FakeHost({ maxQueue: 4, batchMaxMessages: 3 })
  host.append('r', ...range(3, 1))
  const outbox = host.outbox()
  const sink = outbox.sink!
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  outbox.offer('r', host.append('r', ...range(6, 4))) // 4..7 queued, 8 and 9 left to the log: behind
  outbox.offer('r', host.append('r', ...range(11, 10))) // ignored while behind
  host.trim('r', 3) // the log keeps 18..20
  for (let i = 0; i < 3; i++) {
    sink.ack()
    await settle()
  }
  t.deepEqual(batchMessages(sink), [range(3, 1), range(3, 4), range(1, 7), range(3, 18)])
  t.deepEqual(sink.gaps, [{ room: 'r', missed: 10, before: 3 }])
})

test('the gap notice goes again with the batch after the hole whenever that batch is sent again (a takeover, an error answer), until it is acknowledged', async t => {
  const host = new FakeHost()
  host.append('r', ...range(5))
  host.trim('r', 2)
  const outbox = host.outbox()
  const sink = outbox.sink!
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  outbox.resend() // a new session took over
  t.deepEqual(
    sink.gaps.map(gap => gap.before),
    [0, 1],
  )
  t.is(sink.batches[0]!.id, sink.batches[1]!.id)
  outbox.retry() // the client answered it with an error: a new id, the notice again
  t.deepEqual(
    sink.gaps.map(gap => gap.before),
    [0, 1, 2],
  )
  t.deepEqual(batchMessages(sink), [range(2, 3), range(2, 3), range(2, 3)])
  t.not(sink.batches[2]!.id, sink.batches[0]!.id)
  sink.ack()
  outbox.offer('r', host.append('r', 'next'))
  outbox.resend()
  outbox.retry()
  t.is(sink.gaps.length, 3, 'not with later batches')
})

test('no gap notice for a log that starts where the consumer stands, nor for a room log that started again at seq 1', async t => {
  const host = new FakeHost()
  host.append('r', ...range(3))
  const outbox = host.outbox('c1', new FakeSink(true))
  outbox.addRoom('r', { ms: 1, seq: 1 })
  outbox.resync('r')
  await settle()
  t.deepEqual(outbox.sink!.messages, range(2, 1))
  const expired = host.outbox('c2', new FakeSink(true))
  expired.addRoom('r', { ms: 0, seq: 40 }) // ms 1 > 0: the log holds a later incarnation, from seq 1
  expired.resync('r')
  await settle()
  t.deepEqual(expired.sink!.messages, range(3))
  t.deepEqual([outbox.sink!.gaps, expired.sink!.gaps], [[], []])
})

test('missedBetween: a cursor of an older incarnation of the log (its ms before the new one began) is not counted by seq', t => {
  const oldThree = { ms: 1000, seq: 3 }
  t.is(missedBetween(oldThree, { ms: 2000, seq: 6, since: 0 }), 2, 'when the log began is not known: by seq')
  t.is(
    missedBetween(oldThree, { ms: 2000, seq: 6, since: 1500 }),
    null,
    'the new log lost 1..5, the old one what?',
  )
  t.is(missedBetween(oldThree, { ms: 2000, seq: 1, since: 2000 }), 0, 'the new log from its start')
  t.is(missedBetween({ ms: 1600, seq: 3 }, { ms: 2000, seq: 6, since: 1500 }), 2, 'the same log')
  t.is(missedBetween({ ms: 0, seq: 0 }, { ms: 2000, seq: 5, since: 2000 }), 4, 'from the start of any log')
})
