/**
 * Acknowledged cursors are flushed to the rooms' progress hashes (one write
 * per room for all its members); a consumer's own hash gets them when it is
 * released. These tests take the other path: a node that never releases its
 * consumer (it crashed), and the next node that finds its progress.
 */
import test from 'ava'
import { publishAll, range, RecordingSink, startCrashingPair } from '../helpers/broker.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'
import { holdsFor } from '../helpers/eventually.js'
import { consumerIdOf } from '../../src/auth/token.js'

const redis = redisPerFile(test)
const USER = '55a07f2dee06c78e1357b0ad'
let n = 0
/** A consumer of USER, as a token makes it (its keys share the user's slot). */
const consumerId = (): string => consumerIdOf({ userId: USER, exp: ++n })

for (const topology of TOPOLOGIES) {
  test(`${topology}: after a crash, the next node resumes from the last flushed progress: nothing lost, only the unflushed again`, async t => {
    const { crashed, next } = await startCrashingPair(t, redis.target(topology))
    const id = consumerId()
    const first = await new RecordingSink(crashed.node).connect(id, USER)
    await crashed.core.producerApi.subscribe('room', id)
    await publishAll(crashed.core.producerApi, 'room', range(10))
    await first.waitFor(10)
    await crashed.node.flushCursors()
    const progress = await crashed.core.redis.commands.hgetall(crashed.core.keys.room('room').progress)
    t.deepEqual(Object.keys(progress), [id], 'one entry per member, in the room’s hash')
    await publishAll(crashed.core.producerApi, 'room', range(5, 10))
    await first.waitFor(15) // acknowledged, not flushed: the crash loses these acks
    await crashed.core.presence.dropNode(crashed.node.id) // the node is gone: no release, no takeover

    const second = await new RecordingSink(next.node).connect(id, USER)
    await publishAll(next.core.producerApi, 'room', range(5, 15))
    await second.waitFor(10)
    await holdsFor(() => second.messages.length === 10, 100, 'nothing more, nothing twice')
    t.deepEqual(
      second.messages,
      range(10, 10),
      'from the flushed progress on: 10..14 again, then the new ones',
    )

    await next.node.flushCursors()
    await next.node.disconnect(second.outbox!, second)
    t.deepEqual(
      await next.core.redis.commands.hgetall(next.core.keys.room('room').progress),
      {},
      'released: the consumer’s own hash holds its cursor, its progress entry is gone',
    )
    const third = await new RecordingSink(next.node).connect(id, USER)
    await publishAll(next.core.producerApi, 'room', ['last'])
    await third.waitFor(1)
    await holdsFor(() => third.messages.length === 1, 100, 'nothing more, nothing twice')
    t.deepEqual(third.messages, ['last'])
  })
}
