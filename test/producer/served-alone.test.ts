/**
 * subscribe and unsubscribe are served alone on a producer connection: each
 * waits for what came before it and holds back what comes after it, so frames
 * sent back to back (one TCP chunk) take effect in order, as they did in the
 * original broker. On every Redis setup, with and without replica acks.
 */
import test, { type ExecutionContext } from 'ava'
import type { BrokerCore } from '../../src/broker/core.js'
import type { BrokerNode } from '../../src/broker/node.js'
import { userRoom } from '../../src/redis/keys.js'
import { newUserId, range, RecordingSink, startTestNode } from '../helpers/broker.js'
import { redisPerFile, type Topology } from '../helpers/topology.js'
import { authedRawProducer, frame, type RawClient, SECRET } from './setup.js'
import { eventually } from '../helpers/eventually.js'
import { consumerIdOf } from '../../src/auth/token.js'

const redis = redisPerFile(test)

const SETUPS: { name: string; topology: Topology; redisReplicaAcks: number }[] = [
  { name: 'standalone', topology: 'standalone', redisReplicaAcks: 0 },
  { name: 'cluster', topology: 'cluster', redisReplicaAcks: 0 },
  { name: 'cluster, redisReplicaAcks 1', topology: 'cluster', redisReplicaAcks: 1 },
]

const request = (id: string, method: string, params: unknown): string =>
  frame(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
const reply = (id: string, result: unknown): string => frame(JSON.stringify({ jsonrpc: '2.0', id, result }))

/** A node and a producer listener over one core, and an authenticated raw producer socket. */
async function start(
  t: ExecutionContext,
  setup: (typeof SETUPS)[number],
): Promise<{ core: BrokerCore; node: BrokerNode; producer: RawClient }> {
  const { core, node, config } = await startTestNode(t, redis.target(setup.topology), {
    tokenSecrets: [SECRET],
    redisReplicaAcks: setup.redisReplicaAcks,
  })
  const { producer } = await authedRawProducer(t, core, config)
  return { core, node, producer }
}

/** Reads the replies expected, in order, each checked. */
async function expectReplies(t: ExecutionContext, producer: RawClient, replies: string[]): Promise<void> {
  for (const expected of replies) t.is(await producer.expect(expected), expected)
}

for (const setup of SETUPS) {
  test(`${setup.name}: subscribe then unsubscribe in one chunk: answered 1 and 1, the consumer ends outside the room`, async t => {
    const { core, producer } = await start(t, setup)
    const rooms = range(5).map(i => `room-${i}`)
    producer.send(
      rooms
        .map(
          room =>
            request(`s-${room}`, 'subscribe', [room, 't.abc']) +
            request(`u-${room}`, 'unsubscribe', [room, 't.abc']),
        )
        .join(''),
    )
    await expectReplies(
      t,
      producer,
      rooms.flatMap(room => [reply(`s-${room}`, 1), reply(`u-${room}`, 1)]),
    )
    t.deepEqual(await core.redis.commands.hgetall(core.keys.consumer('t.abc').rooms), {})
  })

  test(`${setup.name}: a publish right after subscribe (one chunk) reaches the consumer`, async t => {
    const { node, producer } = await start(t, setup)
    const userId = newUserId()
    const joining = consumerIdOf({ userId, exp: 1 })
    const sink = await new RecordingSink(node).connect(joining, userId)
    const rooms = range(10).map(i => `joined-${i}`)
    producer.send(
      rooms
        .map(
          room =>
            request(`s-${room}`, 'subscribe', [room, joining]) +
            request(`p-${room}`, 'publish', [[room, `first ${room}`]]),
        )
        .join(''),
    )
    await expectReplies(
      t,
      producer,
      rooms.flatMap(room => [reply(`s-${room}`, 1), reply(`p-${room}`, 1)]),
    )
    const expected = rooms.map(room => `first ${room}`)
    await eventually(() => expected.every(message => sink.messages.includes(message))).catch(() => {})
    t.deepEqual([...sink.messages].sort(), expected.sort())
  })

  test(`${setup.name}: a publish right after unsubscribe (one chunk) does not reach the consumer`, async t => {
    const { node, producer } = await start(t, setup)
    const userId = newUserId()
    const leaving = consumerIdOf({ userId, exp: 1 })
    const sink = await new RecordingSink(node).connect(leaving, userId)
    const rooms = range(5).map(i => `left-${i}`)
    producer.send(rooms.map(room => request(`s-${room}`, 'subscribe', [room, leaving])).join(''))
    await expectReplies(
      t,
      producer,
      rooms.map(room => reply(`s-${room}`, 1)),
    )
    producer.send(rooms.map(room => request(`in-${room}`, 'publish', [[room, `in ${room}`]])).join(''))
    await expectReplies(
      t,
      producer,
      rooms.map(room => reply(`in-${room}`, 1)),
    )
    await sink.waitFor(rooms.length) // the consumer is in every room

    producer.send(
      rooms
        .map(
          room =>
            request(`u-${room}`, 'unsubscribe', [room, leaving]) +
            request(`p-${room}`, 'publish', [[room, `gone ${room}`]]),
        )
        .join(''),
    )
    await expectReplies(
      t,
      producer,
      rooms.flatMap(room => [reply(`u-${room}`, 1), reply(`p-${room}`, 1)]),
    )
    // Announced after every "gone": once it is delivered, a delivered "gone" would have been too.
    producer.send(request('marker', 'publish', [[userRoom(userId), 'marker']]))
    await expectReplies(t, producer, [reply('marker', 1)])
    await sink.waitFor(rooms.length + 1)
    t.deepEqual(sink.messages.slice(rooms.length), ['marker'])
  })
}
