/**
 * A room's local members as they come and go (src/broker/fanout.ts): a room
 * holds its one member itself and a Set from the second on, back to the member
 * itself when one is left. Each announcement must reach exactly the members in
 * the room when it comes, once each.
 */
import test from 'ava'
import { userRoom } from '../../src/redis/keys.js'
import { publishAll, RecordingSink, startTestNode } from '../helpers/broker.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'
import { eventually, holdsFor } from '../helpers/eventually.js'
import { consumerIdOf } from '../../src/auth/token.js'

const redis = redisPerFile(test)
const USER = '55a07f2dee06c78e1357b0ad'
let n = 0
/** A consumer of USER, as a token makes it: the consumers of one user share its user room. */
const consumerId = (): string => consumerIdOf({ userId: USER, exp: ++n })

for (const topology of TOPOLOGIES) {
  test(`${topology}: a room of one member that gets a second and loses the first delivers to the one left; emptied, it goes and comes back`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const room = userRoom(USER)
    const first = await new RecordingSink(node).connect(consumerId(), USER)
    await publishAll(core.producerApi, room, ['to the first alone'])
    await first.waitFor(1)

    const second = await new RecordingSink(node).connect(consumerId(), USER)
    await publishAll(core.producerApi, room, ['to both'])
    await first.waitFor(2)
    await second.waitFor(1)

    await node.disconnect(first.outbox!, first)
    await publishAll(core.producerApi, room, ['to the second alone'])
    await second.waitFor(2)
    t.deepEqual(second.messages, ['to both', 'to the second alone'])
    t.deepEqual(first.messages, ['to the first alone', 'to both'])
    t.is(node.roomCount, 1, 'the room stays while a member is in it')

    await node.disconnect(second.outbox!, second)
    await eventually(() => node.footprint().rooms === 0 && node.footprint().roomChannels === 0)

    const third = await new RecordingSink(node).connect(consumerId(), USER)
    await publishAll(core.producerApi, room, ['to the third'])
    await third.waitFor(1)
    await holdsFor(() => third.messages.length === 1, 100, 'once')
    t.deepEqual(third.messages, ['to the third'])
    t.deepEqual(second.messages, ['to both', 'to the second alone'], 'a member gone gets nothing more')
  })

  test(`${topology}: a room of two that loses the second keeps the first; of three, each loss leaves the others`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const room = userRoom(USER)
    const [a, b, c] = [new RecordingSink(node), new RecordingSink(node), new RecordingSink(node)]
    await a.connect(consumerId(), USER)
    await b.connect(consumerId(), USER)
    await node.disconnect(b.outbox!, b)
    await publishAll(core.producerApi, room, ['1'])
    await a.waitFor(1)
    await b.connect(consumerId(), USER)
    await c.connect(consumerId(), USER)
    await publishAll(core.producerApi, room, ['2'])
    await Promise.all([a.waitFor(2), b.waitFor(1), c.waitFor(1)])
    await node.disconnect(b.outbox!, b)
    await publishAll(core.producerApi, room, ['3'])
    await Promise.all([a.waitFor(3), c.waitFor(2)])
    await node.disconnect(a.outbox!, a)
    await publishAll(core.producerApi, room, ['4'])
    await c.waitFor(3)
    await holdsFor(() => c.messages.length === 3, 100, 'once')
    t.deepEqual(a.messages, ['1', '2', '3'])
    t.deepEqual(b.messages, ['2'])
    t.deepEqual(c.messages, ['2', '3', '4'])
  })
}
