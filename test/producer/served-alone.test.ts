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
import type { Redis } from 'ioredis'

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

/**
 * Holds back what the node reads from the master at `address` on its sharded
 * subscriber (its socket paused, as a slow or busy path would): ioredis keeps
 * one subscriber connection per master in a group of its own. Returns what
 * lets it read again.
 */
function holdSubscriberTo(core: BrokerCore, address: string): () => void {
  const group = (
    core.redis.subscriber as unknown as {
      shardedSubscribers: { shardedSubscribers: Map<string, { instance: Redis }> }
    }
  ).shardedSubscribers.shardedSubscribers
  const stream = group.get(address)?.instance.stream
  if (!stream) throw new Error(`no sharded subscriber to ${address}`)
  stream.pause()
  return () => void stream.resume()
}

for (const setup of SETUPS.filter(({ topology }) => topology === 'cluster'))
  test(`${setup.name}: the leave notice read late on the node channel's master: a publish right after unsubscribe does not reach the consumer`, async t => {
    const { core, node, producer } = await start(t, setup)
    const userId = newUserId()
    const leaving = consumerIdOf({ userId, exp: 1 })
    const sink = await new RecordingSink(node).connect(leaving, userId)
    // A room to leave and one to stay in, both on a master other than the node channel's.
    const masterOf = async (channel: string): Promise<number> => (await redis.cluster.masterOf(channel)).port
    const control = await masterOf(core.keys.nodeChannel(node.id))
    let i = 0
    const roomOn = async (isWanted: (port: number) => boolean): Promise<string> => {
      for (;;) {
        const room = `late-${i++}`
        if (isWanted(await masterOf(core.keys.room(room).channel))) return room
      }
    }
    const left = await roomOn(port => port !== control)
    const shard = await masterOf(core.keys.room(left).channel)
    const stay = await roomOn(port => port === shard)
    producer.send(
      request('s-left', 'subscribe', [left, leaving]) + request('s-stay', 'subscribe', [stay, leaving]),
    )
    await expectReplies(t, producer, [reply('s-left', 1), reply('s-stay', 1)])
    producer.send(request('in', 'publish', [[left, 'in']]))
    await expectReplies(t, producer, [reply('in', 1)])
    await sink.waitFor(1)

    const resume = holdSubscriberTo(core, `127.0.0.1:${control}`)
    t.teardown(resume)
    producer.send(request('u', 'unsubscribe', [left, leaving]) + request('p', 'publish', [[left, 'gone']]))
    await expectReplies(t, producer, [reply('u', 1), reply('p', 1)])
    // Announced on the same master's connection after "gone": once it is delivered, "gone" would have been.
    producer.send(request('marker', 'publish', [[stay, 'marker']]))
    await expectReplies(t, producer, [reply('marker', 1)])
    await sink.waitFor(2)
    resume()
    t.deepEqual(sink.messages, ['in', 'marker'])
  })
