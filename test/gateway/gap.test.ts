/**
 * The gap notice on the wire: when the room log no longer has messages a
 * consumer should get (roomLogMaxLen 100 here), the consumer is told, right
 * before the first message after the hole, then gets what the log holds.
 * snapper-consumer, engine.io-client 6 and the SDK (both codecs) hear it; a
 * consumer that was away and one that fell behind live.
 */
import test from 'ava'
import { scrape } from '../../src/metrics/index.js'
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

/** A node whose room logs keep 100 messages (or as `overrides` say), and the SDK producer on it. */
async function startSmallLogBroker(
  t: Parameters<typeof startBroker>[0],
  overrides: Parameters<typeof startBroker>[2] = { roomLogMaxLen: 100 },
) {
  const broker = await startBroker(t, server.url, overrides)
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

// A log that expired starts again at seq 1: a cursor of the old log at seq 3 must not be taken as
// right before the new log's seq 4, whether the new log is read from Redis (no member of the room
// left on the node) or from the node's recent window (another member kept the room heard).
for (const heard of ['read from Redis', 'from the recent window'] as const) {
  test(`a consumer away while its room's log expired and started again is told of the hole (${heard})`, async t => {
    const { broker, producer } = await startSmallLogBroker(t, {
      messageTtlSec: 2,
      roomLogMaxLen: 3,
      recentMaxMessages: 3,
    })
    const token = producer.signConsumerToken({ userId: newUserId() })
    const away = connectConsumer('v4 websocket', broker.ports.gateway, token)
    t.is(await producer.subscribe('news', await within(away.opened(), 10_000, 'the consumer to open')), 1)
    const stays = connectConsumer(
      'v4 websocket',
      broker.ports.gateway,
      producer.signConsumerToken({ userId: newUserId() }),
    )
    t.teardown(() => stays.close())
    if (heard === 'from the recent window') t.is(await producer.subscribe('news', await stays.opened()), 1)
    t.is(await producer.publish(numbers(3, 1).map(message => ['news', `old ${message}`] as const)), 3)
    await away.waitFor(3)
    away.close()
    await eventually(() => broker.node.online === 1, { what: 'the session to be released' })

    const { log } = broker.core.keys.room('news')
    const redis = server.client()
    t.teardown(() => redis.disconnect())
    await eventually(async () => (await redis.exists(log)) === 0, {
      what: 'the log to expire',
      timeoutMs: 10_000,
    })
    t.is(await producer.publish(numbers(6, 1).map(message => ['news', `new ${message}`] as const)), 6)
    if (heard === 'from the recent window') {
      // The member that stayed was live at old 3: it is told the same, before new 4..6.
      await stays.waitFor(6)
      t.deepEqual(stays.messages.slice(3), ['new 4', 'new 5', 'new 6'])
      t.deepEqual(stays.gaps, [{ room: 'news', missed: null, after: 3 }])
    }

    const back = connectConsumer('v4 websocket', broker.ports.gateway, token)
    t.teardown(() => back.close())
    await back.waitFor(3)
    t.deepEqual(back.messages, ['new 4', 'new 5', 'new 6'], 'what the new log of 3 still has')
    t.deepEqual(
      back.gaps,
      [{ room: 'news', missed: null, after: 0 }],
      'new 1..3 and what the old log held after old 3',
    )
  })
}

test('a live consumer that acknowledges slowly while 5,000 are published: what it got, one gap notice, then 4,901..5,000', async t => {
  const { broker, producer } = await startSmallLogBroker(t)
  const consumer = new RawConsumer(broker.ports.gateway, producer.signConsumerToken({ userId: newUserId() }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  const id = await eventually(() => [...broker.gateway.engine.sessions.keys()][0])
  t.is(await producer.subscribe('news', id), 1)
  // The subscribe is answered once the node is told; it then subscribes to the room's channel. Messages
  // announced before that reach the consumer through the log alone, which keeps only the last 100 here.
  const redis = server.client()
  t.teardown(() => redis.disconnect())
  const channel = broker.core.keys.room('news').channel
  await eventually(async () => ((await redis.pubsub('NUMSUB', channel)) as [string, number])[1] === 1, {
    what: "the node to listen to the room's announcements",
  })
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

// A live consumer that fell behind (a queue of 5) is sent the batch after the hole as one batch of
// five single-message chunks; a session's first batch is one chunk. Rebuilt from the cursors, it
// would come back as [m42] under another id: snapper-consumer would hand out m42..m46 twice.
test('the batch right after a hole, in flight when its consumer left, comes again under its id after the same gap notice', async t => {
  const { broker, producer } = await startSmallLogBroker(t, {
    roomLogMaxLen: 20,
    consumerMaxQueue: 5,
    recentMaxMessages: 0,
  })
  const token = producer.signConsumerToken({ userId: newUserId() })
  const first = new RawConsumer(broker.ports.gateway, token)
  t.teardown(() => first.socket.close())
  await first.opened()
  t.is(
    await producer.subscribe('news', await eventually(() => [...broker.gateway.engine.sessions.keys()][0])),
    1,
  )
  for (const message of numbers(61, 1)) t.is(await producer.publish('news', message), 1) // one announcement each
  for (let acked = 0; !first.frames.some(frame => frame.method === 'gap'); acked++) {
    await first.until(() => first.batches.length > acked)
    if (!first.frames.some(frame => frame.method === 'gap')) first.ack(first.batches[acked]!.id)
  }
  await first.until(() => first.frames.at(-1)?.method === 'publish')
  const notice = first.frames.find(frame => frame.method === 'gap')!
  const inflight = first.batches.at(-1)!
  t.deepEqual(inflight.params, numbers(5, 42), 'the batch after the hole, never acknowledged')
  first.socket.close()
  await eventually(() => broker.node.online === 0, { what: 'the session to be released' })

  const back = new RawConsumer(broker.ports.gateway, token)
  t.teardown(() => back.socket.close())
  await back.opened()
  await back.until(() => back.batches.length > 0)
  t.deepEqual(back.frames.slice(0, 2), [notice, inflight], 'the notice again, then the batch as it was')
  // What snapper-consumer hands its application: a batch whose id is not the last one it got.
  let lastId = inflight.id
  const delivered = first.batches.flatMap(batch => batch.params)
  for (let taken = 0; delivered.at(-1) !== '61'; taken++) {
    await back.until(() => back.batches.length > taken)
    const batch = back.batches[taken]!
    if (batch.id !== lastId) delivered.push(...batch.params)
    lastId = batch.id
    back.ack(batch.id)
  }
  t.deepEqual(
    delivered,
    [...numbers(6, 1), ...numbers(20, 42)],
    'each message once, but for the 35 told missed',
  )
})
