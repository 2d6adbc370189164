/**
 * A producer's `subscribe` or `unsubscribe` that reaches Redis after it lost
 * a live consumer's record and before the consumer's node wrote it again
 * (README, After Redis lost data). The loss is a FLUSHALL that keeps the
 * node's liveness key, as a replica that lagged has it (refreshed every
 * second) but not a record written just before: so the node writes the
 * record again only when the test says, by deleting that key (its liveness
 * refresh finds it gone) or by cutting its subscriber (the reconcile).
 * The last test loses data otherwise: Redis restarts from a snapshot taken
 * before the consumer connected.
 * One node on one redis-server, snapper-producer, snapper-consumer.
 */
import test, { type ExecutionContext } from 'ava'
import { consumerIdOf, Tokens, type ConsumerClaims } from '../../src/auth/token.js'
import { Keys } from '../../src/redis/keys.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { eventually, pause } from '../helpers/eventually.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'

const tokens = new Tokens([TEST_SECRET])
const NODE_TTL_MS = 3000 // liveness refreshed every second

type Trigger = 'liveness refresh' | 'subscriber reconnect'

async function lossThen(
  t: ExecutionContext,
  change: (producer: Awaited<ReturnType<typeof connectProducer>>, id: string) => Promise<void>,
  trigger: Trigger,
) {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = redis.client()
  const prefix = uniquePrefix()
  const keys = new Keys(prefix)
  const node = await startBroker(t, redis.url, { redisPrefix: prefix, nodeTtlMs: NODE_TTL_MS })
  const user = newUserId()
  const consumer = connectConsumer('v3 default', node.ports.gateway, tokens.sign({ userId: user }), {
    reconnectMs: 200,
  })
  t.teardown(() => consumer.close())
  const id = await consumer.opened()
  const producer = await connectProducer(t, node.ports.producer)
  await call(producer.joinRoom('news', id))
  await call(producer.joinRoom('other', id))
  const [alive] = await admin.keys(`${prefix}:{n:*}:alive`)
  t.truthy(alive)
  // The loss: everything but the node's liveness key.
  await admin.multi().flushall().set(alive!, '1', 'PX', NODE_TTL_MS).exec()
  await change(producer, id)
  if (trigger === 'liveness refresh') await admin.del(alive!)
  else await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  const record = keys.consumer(id)
  await eventually(async () => (await admin.get(record.node)) !== null, { what: 'the record written again' })
  return { admin, record, consumer, producer, rooms: ['news', `user${user}`, 'extra', 'other'] }
}

/**
 * Publishes `<room> <n>` to each room; resolves with what arrived of them, once each of `expected`
 * did (or 5 s passed: the caller's assertion shows what is missing), and 300 ms more for any other.
 */
async function publishRound(
  producer: Awaited<ReturnType<typeof connectProducer>>,
  consumer: TestConsumer,
  rooms: readonly string[],
  expected: readonly string[],
  n: number,
): Promise<string[]> {
  const from = consumer.messages.length
  for (const room of rooms) producer.sendMessage(room, `${room} ${n}`)
  const got = (): string[] => consumer.messages.slice(from).sort()
  const want = expected.map(room => `${room} ${n}`).sort()
  await eventually(() => want.every(message => got().includes(message)), {
    what: () => `${want.join(', ')} to arrive; got ${got().join(', ') || 'nothing'}`,
    timeoutMs: 5000,
  }).catch(() => {})
  await pause(300)
  return got()
}

/**
 * The consumer's record holds `kept` and nothing else, and `rounds` rounds of one message to every
 * room reach it in exactly those rooms (each round after the first behind a subscriber reconnect:
 * the node reads the record again); its session never closed.
 */
async function assertInRooms(
  t: ExecutionContext,
  { admin, record, consumer, producer, rooms }: Awaited<ReturnType<typeof lossThen>>,
  kept: readonly string[],
  rounds: number,
): Promise<void> {
  t.deepEqual(Object.keys(await admin.hgetall(record.rooms)).sort(), [...kept].sort(), 'its record')
  for (let n = 1; n <= rounds; n++) {
    if (n > 1) await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    const got = await publishRound(producer, consumer, rooms, kept, n)
    t.deepEqual(got, kept.map(room => `${room} ${n}`).sort(), `round ${n}`)
  }
  t.deepEqual(consumer.errors, [], 'its session never closed')
}

for (const trigger of ['liveness refresh', 'subscriber reconnect'] as const)
  test.serial(
    `a join after Redis lost the record, before the node wrote it again (${trigger} first): the consumer keeps its rooms and gets the joined one`,
    async t => {
      const loss = await lossThen(
        t,
        async (producer, id) => {
          t.is(await call(producer.joinRoom('extra', id)), 1)
        },
        trigger,
      )
      await assertInRooms(t, loss, ['news', loss.rooms[1]!, 'extra', 'other'], 2)
    },
  )

for (const trigger of ['liveness refresh', 'subscriber reconnect'] as const)
  test.serial(
    `a leave after Redis lost the record, before the node wrote it again (${trigger} first): the consumer is out of that room and keeps the others`,
    async t => {
      const loss = await lossThen(
        t,
        async (producer, id) => {
          // null: it found the consumer in no room (the record is gone), and it sticks all the same.
          t.is(await call(producer.leaveRoom('other', id)), null)
        },
        trigger,
      )
      await assertInRooms(t, loss, ['news', loss.rooms[1]!], 2)
    },
  )

test.serial(
  'a leave and a join again of the same room after the loss: the consumer is in it, from the join on',
  async t => {
    const loss = await lossThen(
      t,
      async (producer, id) => {
        await call(producer.leaveRoom('other', id))
        t.is(await call(producer.joinRoom('other', id)), 1)
      },
      'liveness refresh',
    )
    await assertInRooms(t, loss, ['news', loss.rooms[1]!, 'other'], 1)
  },
)

// A leave of a consumer whose record has no node key and no own room is kept in `left` (for a
// restore); one of its own room, made while it was offline, stays there after it connects, and a
// later loss that keeps it (a snapshot taken in between) then took the own room from the session.
test.serial(
  'an unsubscribe from its own room while the consumer was offline does not take that room from it after it connects and Redis restarts from a snapshot taken before',
  async t => {
    const redis = await startRedis()
    t.teardown(() => redis.stop())
    const admin = redis.client()
    const prefix = uniquePrefix()
    const node = await startBroker(t, redis.url, { redisPrefix: prefix, nodeTtlMs: NODE_TTL_MS })
    const producer = await connectProducer(t, node.ports.producer)
    const user = newUserId()
    const own = `user${user}`
    const token = tokens.sign({ userId: user })
    const verified = tokens.verify(token)
    if (!verified.ok) throw new Error('the test token does not verify')
    const id = consumerIdOf(verified.claims as unknown as ConsumerClaims)
    t.is(await call(producer.leaveRoom(own, id)), null, 'it was in no room')
    await admin.save() // the snapshot Redis restarts from

    const consumer = connectConsumer('v3 default', node.ports.gateway, token, { reconnectMs: 200 })
    t.teardown(() => consumer.close())
    t.is(await consumer.opened(), id)
    producer.sendMessage(own, 'before')
    await consumer.waitFor(1, 5000)
    await redis.kill('SIGKILL')
    await redis.restart()
    const record = new Keys(prefix).consumer(id)
    await eventually(async () => (await admin.get(record.node)) !== null, {
      what: 'the record written again',
    })
    const got = await publishRound(producer, consumer, [own], [own], 1)
    t.deepEqual(got, [`${own} 1`], 'what it got after the restart')
    t.deepEqual(Object.keys(await admin.hgetall(record.rooms)), [own], 'its record')
    t.deepEqual(consumer.errors, [], 'its session never closed')
  },
)
