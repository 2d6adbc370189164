/**
 * Delivery with the published clients, unchanged: snapper-consumer@1.3.6
 * (Engine.IO 3) and engine.io-client@6 (Engine.IO 4), each with its default
 * transports (polling, then the upgrade) and with websocket only, against a
 * whole node on a real Redis (one server, and a Redis Cluster of 3 masters
 * with replicas), fed by the real snapper-producer@2.1.1.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { CLIENT_KINDS, connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'
import { eventually } from '../helpers/eventually.js'

const redis = redisPerFile(test)

const tokens = new Tokens([TEST_SECRET])
const consumerToken = (userId: string, extra: Record<string, unknown> = {}): string =>
  tokens.sign({ userId, ...extra })
const range = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => JSON.stringify(from + i))

function closeAll(consumers: TestConsumer[]): void {
  for (const consumer of consumers) consumer.close()
}

for (const topology of TOPOLOGIES) {
  for (const kind of CLIENT_KINDS) {
    test(`${topology} ${kind}: messages 1, 2, 3 arrive in order after joinRoom`, async t => {
      const broker = await startBroker(t, redis.target(topology))
      const producer = await connectProducer(t, broker.ports.producer)
      const consumer = connectConsumer(kind, broker.ports.gateway, consumerToken(newUserId()))
      t.teardown(() => consumer.close())
      const id = await consumer.opened()
      t.is(await call(producer.joinRoom('project', id)), 1)
      producer.sendMessage('project', '1').sendMessage('project', '2').sendMessage('project', '3')
      await consumer.waitFor(3)
      t.deepEqual(consumer.messages, ['1', '2', '3'])
    })

    test(`${topology} ${kind}: messages to user<userId> arrive without a join; falsy JSON values arrive intact`, async t => {
      const broker = await startBroker(t, redis.target(topology))
      const producer = await connectProducer(t, broker.ports.producer)
      const userId = newUserId()
      const consumer = connectConsumer(kind, broker.ports.gateway, consumerToken(userId))
      t.teardown(() => consumer.close())
      await consumer.opened()
      const values = [0, '0', false, {}, [], null].map(d => JSON.stringify({ e: 'update', d }))
      for (const value of values) producer.sendMessage(`user${userId}`, value)
      await consumer.waitFor(values.length)
      t.deepEqual(
        consumer.messages.map(message => (JSON.parse(message) as { d: unknown }).d),
        [0, '0', false, {}, [], null],
      )
    })

    test(`${topology} ${kind}: a consumer request is echoed`, async t => {
      const broker = await startBroker(t, redis.target(topology))
      const consumer = connectConsumer(kind, broker.ports.gateway, consumerToken(newUserId()))
      t.teardown(() => consumer.close())
      await consumer.opened()
      t.deepEqual(await consumer.request('echo', [1, 'two', { three: 3 }]), [1, 'two', { three: 3 }])
    })

    test(`${topology} ${kind}: a bad token never opens and reports an error`, async t => {
      const broker = await startBroker(t, redis.target(topology))
      const wrong = new Tokens(['another secret']).sign({ userId: newUserId() })
      for (const token of [
        'errorToken',
        wrong,
        tokens.sign({ name: 'no user id' }),
        tokens.sign({ userId: newUserId() }, -10),
      ]) {
        const consumer = connectConsumer(kind, broker.ports.gateway, token)
        t.teardown(() => consumer.close())
        await t.throwsAsync(consumer.opened())
        t.true(consumer.errors.length > 0)
      }
      t.is(broker.gateway.engine.sessions.size, 0)
    })

    test(`${topology} ${kind}: consumers counts a user's connections as they come and go`, async t => {
      const broker = await startBroker(t, redis.target(topology))
      const producer = await connectProducer(t, broker.ports.producer)
      const userId = newUserId()
      const count = async (): Promise<number> =>
        ((await call(producer.request('consumers', [userId]))) as { length: number }).length
      const consumers: TestConsumer[] = []
      t.teardown(() => closeAll(consumers))
      const seen = [await count()]
      for (const source of ['web', 'ios', 'android']) {
        const consumer = connectConsumer(kind, broker.ports.gateway, consumerToken(userId, { source }))
        consumers.push(consumer)
        await consumer.opened()
        seen.push(await count())
      }
      t.deepEqual(await call(producer.request('consumers', [userId])), {
        length: 3,
        android: 1,
        ios: 1,
        web: 1,
      })
      for (const consumer of consumers) {
        consumer.close()
        const expected = seen[seen.length - 1]! - 1
        await eventually(async () => (await count()) === expected)
        seen.push(expected)
      }
      t.deepEqual(seen, [0, 1, 2, 3, 2, 1, 0])
    })

    test(`${topology} ${kind}: two consumers of one user both get the user room's messages`, async t => {
      const broker = await startBroker(t, redis.target(topology))
      const producer = await connectProducer(t, broker.ports.producer)
      const userId = newUserId()
      const consumers = [
        connectConsumer(kind, broker.ports.gateway, consumerToken(userId, { source: 'web' })),
        connectConsumer(kind, broker.ports.gateway, consumerToken(userId, { source: 'ios' })),
      ]
      t.teardown(() => closeAll(consumers))
      await Promise.all(consumers.map(consumer => consumer.opened()))
      for (const message of range(5)) producer.sendMessage(`user${userId}`, message)
      await Promise.all(consumers.map(consumer => consumer.waitFor(5)))
      for (const consumer of consumers) t.deepEqual(consumer.messages, range(5))
    })

    test(`${topology} ${kind}: a consumer that misses 300 messages gets them all after reconnecting, in order, once`, async t => {
      const broker = await startBroker(t, redis.target(topology))
      const producer = await connectProducer(t, broker.ports.producer)
      const userId = newUserId()
      const token = consumerToken(userId)
      const first = connectConsumer(kind, broker.ports.gateway, token)
      const id = await first.opened()
      await call(producer.joinRoom('missed', id))
      for (const message of range(10)) producer.sendMessage('missed', message)
      await first.waitFor(10)
      first.close()
      await eventually(() => broker.node.online === 0)
      for (const message of range(300, 10)) producer.sendMessage('missed', message)
      await call(producer.request('echo', [])) // everything before it is stored
      const second = connectConsumer(kind, broker.ports.gateway, token)
      t.teardown(() => second.close())
      t.is(await second.opened(), id, 'the same token gives the same consumer id')
      await second.waitFor(300)
      producer.sendMessage('missed', 'after')
      await second.waitFor(301)
      t.deepEqual(second.messages, [...range(300, 10), 'after'])
    })
  }

  test(`${topology}: 1,000 messages to 200 consumers in one room arrive in order at every one; /stats adds up`, async t => {
    const broker = await startBroker(t, redis.target(topology))
    const producer = await connectProducer(t, broker.ports.producer)
    const consumers = Array.from({ length: 200 }, (_, i) =>
      connectConsumer(
        i % 2 === 0 ? 'v3 websocket' : 'v4 websocket',
        broker.ports.gateway,
        consumerToken(newUserId()),
      ),
    )
    t.teardown(() => closeAll(consumers))
    const ids = await Promise.all(consumers.map(consumer => consumer.opened()))
    await Promise.all(ids.map(id => call(producer.joinRoom('crowd', id))))
    const messages = range(1000)
    for (const message of messages) producer.sendMessage('crowd', message)
    await Promise.all(consumers.map(consumer => consumer.waitFor(1000, 60_000)))
    for (const consumer of consumers) t.deepEqual(consumer.messages, messages)

    const response = await fetch(
      `http://127.0.0.1:${broker.ports.gateway}/stats?token=${tokens.signOperator()}`,
    )
    t.is(response.status, 200)
    const body = (await response.json()) as { stats: { total: Record<string, number>; online: number } }
    t.true(body.stats.total.producerMessages! >= 1000)
    t.true(body.stats.total.consumerMessages! >= 200_000)
    t.true(body.stats.total.consumers! >= 200)
    t.is(body.stats.online, 200)
    // As the original: a valid token of another role is 400, a bad one 401.
    const consumer = await fetch(
      `http://127.0.0.1:${broker.ports.gateway}/stats?token=${consumerToken(newUserId())}`,
    )
    t.is(consumer.status, 400)
    const forged = await fetch(`http://127.0.0.1:${broker.ports.gateway}/stats?token=e30.eA.`)
    t.is(forged.status, 401)
  })
}
