/**
 * A cursor flush whose progress write fails (Redis answers it with an error)
 * loses nothing: its rooms are changed again in the outboxes, and the next
 * flush writes their cursors. The write is made to fail for real: the room's
 * progress key holds a string, so the script's HSET answers WRONGTYPE.
 */
import test from 'ava'
import { consumerIdOf } from '../../src/auth/token.js'
import { formatCursor, ORIGIN } from '../../src/broker/cursor.js'
import { CursorFlush } from '../../src/broker/cursor-flush.js'
import { makeEntry } from '../../src/broker/entry.js'
import { NodeContext } from '../../src/broker/node-context.js'
import type { Outbox } from '../../src/broker/outbox.js'
import { OutboxCursors } from '../../src/broker/outbox-cursors.js'
import { silentLogger } from '../../src/log.js'
import { publishAll, range, RecordingSink, startCrashingPair, startTestNode } from '../helpers/broker.js'
import { eventually, holdsFor } from '../helpers/eventually.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'

const redis = redisPerFile(test)
const USER = '55a07f2dee06c78e1357b0ae'
let n = 0
/** A consumer of USER, as a token makes it (its keys share the user's slot). */
const consumerId = (): string => consumerIdOf({ userId: USER, exp: ++n })

for (const topology of TOPOLOGIES) {
  test(`${topology}: a flush whose write failed is written by the next; after a crash, nothing acknowledged comes again`, async t => {
    const { crashed, next } = await startCrashingPair(t, redis.target(topology))
    const { commands } = crashed.core.redis
    const progress = crashed.core.keys.room('room').progress
    const id = consumerId()
    const first = await new RecordingSink(crashed.node).connect(id, USER)
    await crashed.core.producerApi.subscribe('room', id)
    await commands.set(progress, 'not a hash')
    await publishAll(crashed.core.producerApi, 'room', range(10))
    await first.waitFor(10)
    await t.throwsAsync(crashed.node.flushCursors(), { message: /WRONGTYPE/ }, 'the write fails')
    await commands.del(progress)
    await crashed.node.flushCursors()
    t.deepEqual(
      await commands.hgetall(progress),
      { [id]: formatCursor(first.outbox!.cursors.acked('room')!) },
      'the next flush writes the cursor the failed one carried',
    )
    await crashed.core.presence.dropNode(crashed.node.id) // the node is gone: no release, no takeover

    const second = await new RecordingSink(next.node).connect(id, USER)
    await publishAll(next.core.producerApi, 'room', ['after'])
    await second.waitFor(1)
    await holdsFor(() => second.messages.length === 1, 100, 'nothing more, nothing twice')
    t.deepEqual(second.messages, ['after'], 'nothing acknowledged on the crashed node comes again')
  })

  test(`${topology}: a periodic flush whose write failed is written by a later one, once Redis takes it`, async t => {
    const { core, node } = await startTestNode(t, redis.target(topology), { cursorFlushMs: 50 })
    const { commands } = core.redis
    const progress = core.keys.room('room').progress
    const id = consumerId()
    const sink = await new RecordingSink(node).connect(id, USER)
    await core.producerApi.subscribe('room', id)
    await commands.set(progress, 'not a hash')
    await publishAll(core.producerApi, 'room', range(10))
    await sink.waitFor(10)
    await eventually(() => node.counters.redisErrors > 0, { what: 'a failed flush' })
    await commands.del(progress)
    const written = await eventually(async () => (await commands.hgetall(progress))[id], {
      what: 'the cursor in the progress hash',
    })
    t.is(written, formatCursor(sink.outbox!.cursors.acked('room')!), 'the acknowledged cursor')
    t.is(await commands.type(progress), 'hash')
  })
}

test('cluster: a flush asks once per room whether its master answers, however many of its members offer a cursor', async t => {
  const { core, node } = await startTestNode(t, redis.target('cluster'), { cursorFlushMs: 3_600_000 })
  const rooms = ['room-a', 'room-b']
  const sinks: RecordingSink[] = []
  for (let k = 0; k < 3; k++) {
    const id = consumerId()
    sinks.push(await new RecordingSink(node).connect(id, USER))
    for (const room of rooms) await core.producerApi.subscribe(room, id)
  }
  for (const room of rooms) await publishAll(core.producerApi, room, range(3))
  for (const sink of sinks) await sink.waitFor(6)
  await eventually(() => sinks.every(sink => sink.outbox!.inflight === undefined), {
    what: 'every batch acked',
  })

  // A master named down (none of ours): the flush asks, for each room, whether the master of its
  // progress hash answers. Set and reset around the flush's synchronous part, before the watchdog's next PING.
  const asked: string[] = []
  const { redis: clients } = core
  const isReadyFor = clients.isReadyFor.bind(clients)
  clients.isReadyFor = (...keys) => (asked.push(...keys), isReadyFor(...keys))
  clients.setAnswering(false, ['127.0.0.1:1'])
  const flushed = node.flushCursors()
  clients.setAnswering(true)
  await flushed

  t.deepEqual(
    asked.sort(),
    rooms.map(room => core.keys.room(room).progress).sort(),
    'each room once, not once per member',
  )
  for (const room of rooms)
    t.deepEqual(
      await clients.commands.hgetall(core.keys.room(room).progress),
      Object.fromEntries(
        sinks.map(sink => [sink.outbox!.consumerId, formatCursor(sink.outbox!.cursors.acked(room)!)]),
      ),
      `every member's cursor in ${room}'s progress`,
    )
})

test('standalone: one room acknowledged by 70,000 consumers of the node: a flush writes every cursor', async t => {
  // More cursors than a call's arguments may spread: the flush threw RangeError, and the cursors it took were lost.
  const { core, config } = await startTestNode(t, redis.target('standalone'), { cursorFlushMs: 3_600_000 })
  const flush = new CursorFlush(core, config, new NodeContext(silentLogger, config.logMaxFailuresPerSec))
  const n = 70_000
  for (let i = 0; i < n; i++) {
    const cursors = new OutboxCursors(new Map([['room', { acked: ORIGIN }]]))
    cursors.acknowledge([makeEntry('room', 1000, i + 1, 'm', undefined)])
    // What the flush reads of an outbox: a real one per consumer would cost a session each.
    flush.acknowledged({ consumerId: `c${i}`, cursors } as unknown as Outbox)
  }
  await flush.flushCursors()
  const progress = core.keys.room('room').progress
  t.is(await core.redis.commands.hlen(progress), n)
  t.deepEqual(await core.redis.commands.hmget(progress, 'c0', `c${n - 1}`), ['1000-1', `1000-${n}`])
})
