/**
 * The SDK across a node's end, with the real CLI (`--workers 0`): a graceful
 * restart (SIGTERM, then a new node on the same ports) under a stream of
 * answered publishes loses and repeats nothing, for both codecs on both
 * transports, and the draining node's `reconnect` notice skips the backoff; after a SIGKILL the new node sends again what the dead one
 * had delivered (its acknowledgements were never written), and the SDK
 * consumer hands none of it out twice: also one that got more rooms over its
 * life than its maxRoomsRemembered, for the rooms it got last.
 */
import test from 'ava'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { startCli, type RunningCli } from '../helpers/cli.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import type { ConsumerOptions } from '../../src/sdk/consumer/node.js'
import { Producer } from '../../src/sdk/producer/index.js'
import { collect, consumerFor } from './helpers.js'
import type { ExecutionContext } from 'ava'
import { holdsFor, pause } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const envFor = (prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
  SNAPPER_REDIS: server.url,
  SNAPPER_REDIS_PREFIX: prefix,
  SNAPPER_TOKEN_SECRETS: TEST_SECRET,
  SNAPPER_DRAIN_SPREAD_MS: '0',
  ...extra,
})

/** A second node on the first one's gateway and producer ports. */
const restartOn = (t: ExecutionContext, first: RunningCli, prefix: string): Promise<RunningCli> =>
  startCli(t, {
    workers: 0,
    env: envFor(prefix, {
      SNAPPER_GATEWAY_PORT: String(first.ports.gateway),
      SNAPPER_PRODUCER_PORT: String(first.ports.producer),
    }),
  })

const numbers = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i))

test('a node restart under load: every message once, in order, on both codecs and transports', async t => {
  const prefix = uniquePrefix()
  const first = await startCli(t, { workers: 0, env: envFor(prefix) })
  const producer = new Producer({
    port: first.ports.producer,
    secret: TEST_SECRET,
    id: 'restart',
    reconnectMaxMs: 500,
  })
  t.teardown(() => producer.close())
  const kinds = [
    { codec: 'json', transports: ['websocket'] },
    { codec: 'msgpack', transports: ['polling'] },
  ] as const
  const consumers = kinds.map(kind =>
    consumerFor(t, first.ports.gateway, producer.signConsumerToken({ userId: newUserId() }), {
      ...kind,
      reconnectMaxMs: 500,
    }),
  )
  const received = consumers.map(collect)
  // The draining node says "come back at once" (the `reconnect` notice): no backoff before the first retry.
  const firstRetries = consumers.map(
    consumer =>
      new Promise<number | undefined>(resolve =>
        consumer.on('state', (state, details) => state === 'reconnecting' && resolve(details.retryInMs)),
      ),
  )
  await Promise.all(consumers.map(consumer => consumer.connect()))
  for (const consumer of consumers) t.is(await producer.subscribe('stream', consumer.id!), 1)

  const total = 300
  let second: Promise<RunningCli> | undefined
  for (let i = 0; i < total; i++) {
    if (i === 100) {
      first.signal('SIGTERM')
      second = first.exited.then(() => restartOn(t, first, prefix))
    }
    t.is(await producer.publish('stream', String(i)), 1)
    if (i % 10 === 0) await pause(5) // spread over the restart
  }
  t.is(await first.exited, 0)
  t.deepEqual(await Promise.all(firstRetries), [0, 0])
  const next = await second!
  await Promise.all(received.map(r => r.waitFor(total, 20_000)))
  await holdsFor(() => received.every(r => r.messages().length === total), 300, 'nothing repeated')
  for (const [i, r] of received.entries()) t.deepEqual(r.messages(), numbers(total), kinds[i]!.codec)
  next.signal('SIGTERM')
  t.is(await next.exited, 0)
})

/**
 * A node that writes no acknowledgement before it is killed (the next node
 * starts from the join), a producer on another node of the same Redis, and
 * an SDK consumer of the first, connected, whose messages are collected.
 */
async function nodeToKill(t: ExecutionContext, options: Omit<ConsumerOptions, 'token'>) {
  const prefix = uniquePrefix()
  const first = await startCli(t, { workers: 0, env: envFor(prefix, { SNAPPER_CURSOR_FLUSH_MS: '600000' }) })
  const publisher = await startBroker(t, server.url, { redisPrefix: prefix })
  const producer = new Producer({ port: publisher.ports.producer, secret: TEST_SECRET, id: 'kill' })
  t.teardown(() => producer.close())
  const consumer = consumerFor(t, first.ports.gateway, producer.signConsumerToken({ userId: newUserId() }), {
    reconnectMaxMs: 500,
    ...options,
  })
  const received = collect(consumer)
  await consumer.connect()
  /** SIGKILLs the node and starts the next on its ports; resolves once the consumer is open on it. */
  const killAndRestart = async (): Promise<RunningCli> => {
    const reopened = new Promise<void>(resolve =>
      consumer.on('state', state => state === 'open' && resolve()),
    )
    first.child.kill('SIGKILL')
    await first.exited
    const next = await restartOn(t, first, prefix)
    await reopened
    return next
  }
  return { producer, consumer, received, killAndRestart }
}

test('SIGKILL: the next node sends again what the dead one delivered; the SDK hands out none of it twice', async t => {
  const { producer, consumer, received, killAndRestart } = await nodeToKill(t, { codec: 'msgpack' })
  t.is(await producer.subscribe('crash', consumer.id!), 1)
  t.is(await producer.publish(numbers(100).map(n => ['crash', n] as const)), 100)
  await received.waitFor(100)

  const next = await killAndRestart()
  t.is(await producer.publish('crash', '100'), 1)
  await received.waitFor(101)
  await holdsFor(() => received.messages().length === 101, 300, 'none of it twice')
  t.deepEqual(received.messages(), numbers(101))
  next.signal('SIGTERM')
  t.is(await next.exited, 0)
})

test('SIGKILL after many rooms: a consumer remembering 5 rooms hands out nothing of its 5 recent rooms twice', async t => {
  const { producer, consumer, received, killAndRestart } = await nodeToKill(t, { maxRoomsRemembered: 5 })
  // 20 rooms delivered to and left: more than it remembers, and none of them comes again.
  const old = Array.from({ length: 20 }, (_, i) => `old${i}`)
  for (const room of old) t.is(await producer.subscribe(room, consumer.id!), 1)
  t.is(await producer.publish(old.map(room => [room, room] as const)), 20)
  await received.waitFor(20)
  for (const room of old) t.is(await producer.unsubscribe(room, consumer.id!), 1)
  // The 5 recent rooms, 10 messages each, interleaved: the next node sends all 50 again.
  const recent = Array.from({ length: 5 }, (_, i) => `recent${i}`)
  for (const room of recent) t.is(await producer.subscribe(room, consumer.id!), 1)
  const batch = numbers(10).flatMap(n => recent.map(room => [room, `${room}:${n}`] as const))
  t.is(await producer.publish(batch), 50)
  await received.waitFor(70)

  const next = await killAndRestart()
  t.is(await producer.publish(recent.map(room => [room, `${room}:10`] as const)), 5)
  await received.waitFor(75)
  await holdsFor(() => received.messages().length === 75, 300, 'none of it twice')
  const inRoom = (room: string): string[] =>
    received.all.filter(([, meta]) => meta.room === room).map(([m]) => m)
  for (const room of recent)
    t.deepEqual(
      inRoom(room),
      [...numbers(10), '10'].map(n => `${room}:${n}`),
    )
  next.signal('SIGTERM')
  t.is(await next.exited, 0)
})
