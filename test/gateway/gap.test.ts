/**
 * The gap notice on the wire: when the room log no longer has messages a
 * consumer should get (roomLogMaxLen 100 here), the consumer is told, right
 * before the first message after the hole, then gets what the log holds.
 * snapper-consumer, engine.io-client 6 and the SDK (both codecs) hear it; a
 * consumer that was away and one that fell behind live.
 */
import test from 'ava'
import { scrape } from '../../src/metrics.js'
import { Producer } from '../../src/sdk/producer/index.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer, type ClientKind } from '../helpers/consumers.js'
import { eventually, within } from '../helpers/eventually.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { consumerFor, collect } from '../sdk/helpers.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const numbers = (count: number, from: number): string[] =>
  Array.from({ length: count }, (_, i) => String(from + i))

/** A node whose room logs keep 100 messages, and the SDK producer on it. */
async function startSmallLogBroker(t: Parameters<typeof startBroker>[0]) {
  const broker = await startBroker(t, server.url, { roomLogMaxLen: 100 })
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'gap-test' })
  t.teardown(() => producer.close())
  return { broker, producer }
}

for (const kind of ['v3 websocket', 'v3 default', 'v4 websocket'] as const satisfies readonly ClientKind[]) {
  test(`${kind}: a consumer away while 300 were published hears of the 200 the log no longer has, then gets 201..300`, async t => {
    const { broker, producer } = await startSmallLogBroker(t)
    const token = producer.signConsumerToken({ userId: newUserId() })
    const away = connectConsumer(kind, broker.ports.gateway, token)
    const id = await within(away.opened(), 10_000, `${kind} to open`)
    t.is(await producer.subscribe('news', id), 1)
    away.close()
    await eventually(() => broker.node.online === 0, { what: 'the session to be released' })
    t.is(await producer.publish(numbers(300, 1).map(message => ['news', message] as const)), 300)

    const back = connectConsumer(kind, broker.ports.gateway, token)
    t.teardown(() => back.close())
    await back.waitFor(100)
    t.deepEqual(back.gaps, [{ room: 'news', missed: 200, after: 0 }])
    t.deepEqual(back.messages, numbers(100, 201))
  })
}

for (const codec of ['json', 'msgpack'] as const) {
  test(`SDK, codec=${codec}: the consumer's 'gap' event fires before the first message after the hole`, async t => {
    const { broker, producer } = await startSmallLogBroker(t)
    const token = producer.signConsumerToken({ userId: newUserId() })
    const away = consumerFor(t, broker.ports.gateway, token, { codec })
    await away.connect()
    t.is(await producer.subscribe('news', away.id!), 1)
    away.close()
    await eventually(() => broker.node.online === 0, { what: 'the session to be released' })
    t.is(await producer.publish(numbers(300, 1).map(message => ['news', message] as const)), 300)

    const back = consumerFor(t, broker.ports.gateway, token, { codec })
    const received = collect(back)
    const gaps: { room: string; missed: number | null; after: number }[] = []
    back.on('gap', ({ room, missed }) => gaps.push({ room, missed, after: received.all.length }))
    await back.connect()
    await received.waitFor(100)
    t.deepEqual(gaps, [{ room: 'news', missed: 200, after: 0 }])
    t.deepEqual(received.messages(), numbers(100, 201))
  })
}

test('a live consumer that acknowledges slowly while 5,000 are published: what it got, one gap notice, then 4,901..5,000', async t => {
  const { broker, producer } = await startSmallLogBroker(t)
  const consumer = new RawConsumer(broker.ports.gateway, producer.signConsumerToken({ userId: newUserId() }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  const id = await eventually(() => [...broker.gateway.engine.sessions.keys()][0])
  t.is(await producer.subscribe('news', id), 1)
  t.is(await producer.publish(numbers(5000, 1).map(message => ['news', message] as const)), 5000)

  // Acknowledge each batch only now, one at a time, until the last message came.
  const received: string[] = []
  for (let acked = 0; received.at(-1) !== '5000'; acked++) {
    await consumer.until(() => consumer.batches.length > acked, 10_000)
    const batch = consumer.batches[acked]!
    received.push(...batch.params)
    consumer.ack(batch.id)
  }
  const gaps = consumer.frames.filter(frame => frame.method === 'gap')
  t.is(gaps.length, 1)
  const before = countBefore(consumer, gaps[0]!)
  t.true(before >= 1000, `got ${before} before the hole: its queue held a thousand`)
  const missed = 4900 - before
  t.deepEqual(gaps[0]!.params, [{ room: 'news', missed }] as unknown as string[])
  t.deepEqual(received, [...numbers(before, 1), ...numbers(100, 4901)])
  const metrics = (await scrape(broker.registry)).body
  t.regex(metrics, /^snapper_gaps_total 1$/m)
  t.regex(metrics, new RegExp(`^snapper_gap_messages_total ${missed}$`, 'm'))
})

/** Messages received before `frame` (a notice) arrived. */
function countBefore(consumer: RawConsumer, frame: RawConsumer['frames'][number]): number {
  const index = consumer.frames.indexOf(frame)
  return consumer.frames
    .slice(0, index)
    .reduce((sum, f) => sum + (f.method === 'publish' ? f.params!.length : 0), 0)
}
