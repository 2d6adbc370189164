/**
 * "Who is in this room?" asked of every node (the dashboard's room view):
 * members on two nodes, counted and listed; a room nobody is in; a node that
 * does not answer in time does not hold the answer up for ever.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { askRoomMembers } from '../../src/broker/room-members.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { TOPOLOGIES, redisPerFile } from '../helpers/topology.js'

const redis = redisPerFile(test)
const tokens = new Tokens([TEST_SECRET])

for (const topology of TOPOLOGIES) {
  test(`${topology}: members on two nodes, counted and listed with their node`, async t => {
    const a = await startBroker(t, redis.target(topology))
    const b = await startBroker(t, redis.target(topology), { redisPrefix: a.config.redisPrefix })
    const consumers = [a, a, b].map((node, i) =>
      connectConsumer(
        'v4 websocket',
        node.ports.gateway,
        tokens.sign({ userId: newUserId(), source: i ? 'web' : 'ios' }),
      ),
    )
    t.teardown(() => consumers.forEach(c => c.close()))
    const ids = await Promise.all(consumers.map(c => c.opened()))
    const producer = await connectProducer(t, a.ports.producer)
    await Promise.all(ids.map(id => call(producer.joinRoom('ops', id))))
    const { commands, pubsub } = a.core.redis
    const members = await askRoomMembers(commands, pubsub, a.core.keys, 'ops', {
      liveNodes: 2,
      timeoutMs: 2000,
    })
    t.is(members.count, 3)
    t.is(members.nodes, 2)
    t.deepEqual(members.consumers.map(m => m.consumerId).sort(), [...ids].sort())
    t.like(
      members.consumers.find(m => m.consumerId === ids[0]),
      { platform: 'ios', node: a.node.name },
    )
    const nobody = await askRoomMembers(commands, pubsub, a.core.keys, 'empty', {
      liveNodes: 2,
      timeoutMs: 2000,
    })
    t.deepEqual(nobody, { count: 0, consumers: [], nodes: 2 })
  })
}

test('a node missing from the answers: the question ends at its timeout with what came', async t => {
  const a = await startBroker(t, redis.target('standalone'))
  const started = Date.now()
  const { commands, pubsub } = a.core.redis
  const members = await askRoomMembers(commands, pubsub, a.core.keys, 'r', { liveNodes: 3, timeoutMs: 300 })
  t.deepEqual(members, { count: 0, consumers: [], nodes: 1 })
  t.true(Date.now() - started >= 300)
})
