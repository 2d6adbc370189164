/**
 * What each client gets after a node is SIGKILLed (the real CLI, restarted on
 * its ports): what it had acknowledged since the node's last cursor flush
 * comes again (README, "after a crash"). Batch ids are derived from what a
 * batch holds and a session's first batch is its first chunk, so the batch a
 * live consumer had last comes again as it was: snapper-consumer and an
 * engine.io-client app that drop a repeat of the last batch id drop it; the
 * SDK drops anything it had by room and seq. Messages published while the
 * node was dead arrive once.
 */
import test, { type ExecutionContext } from 'ava'
import { Producer } from '../../src/sdk/producer/index.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { startCli, type RunningCli } from '../helpers/cli.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, holdsFor, pause, within } from '../helpers/eventually.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { collect, consumerFor } from '../sdk/helpers.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const envFor = (prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
  SNAPPER_REDIS: server.url,
  SNAPPER_REDIS_PREFIX: prefix,
  SNAPPER_TOKEN_SECRETS: TEST_SECRET,
  ...extra,
})

const numbers = (count: number, from = 1): string[] =>
  Array.from({ length: count }, (_, i) => String(from + i))

/** How many of `received` came more than once. */
const duplicates = (received: readonly string[]): number => received.length - new Set(received).size

interface Clients {
  /** Messages each client handed to its application, by client. */
  received(): Record<'snapper-consumer' | 'engine.io-client' | 'sdk', string[]>
  waitFor(count: number): Promise<void>
}

/** A node, a publisher on another node, and one client of each kind in room `crash`. */
async function setUp(
  t: ExecutionContext,
  env: Record<string, string> = {},
): Promise<{ node: RunningCli; producer: Producer; clients: Clients; prefix: string }> {
  const prefix = uniquePrefix()
  const node = await startCli(t, { workers: 0, env: envFor(prefix, env) })
  const publisher = await startBroker(t, server.url, { redisPrefix: prefix })
  const producer = new Producer({ port: publisher.ports.producer, secret: TEST_SECRET, id: 'crash' })
  t.teardown(() => producer.close())
  const token = (): string => producer.signConsumerToken({ userId: newUserId() })
  const legacy = connectConsumer('v3 websocket', node.ports.gateway, token(), { reconnectMs: 200 })
  const eio = connectConsumer('v4 websocket', node.ports.gateway, token(), { reconnectMs: 200 })
  t.teardown(() => [legacy, eio].forEach(consumer => consumer.close()))
  const sdk = consumerFor(t, node.ports.gateway, token(), { codec: 'json', reconnectMaxMs: 300 })
  const sdkReceived = collect(sdk)
  await sdk.connect()
  const ids = await within(Promise.all([legacy.opened(), eio.opened()]), 10_000, 'the consumers to open')
  for (const id of [...ids, sdk.id!]) t.is(await producer.subscribe('crash', id), 1)
  const clients: Clients = {
    received: () => ({
      'snapper-consumer': legacy.messages,
      'engine.io-client': eio.messages,
      sdk: sdkReceived.messages(),
    }),
    waitFor: async count => {
      await Promise.all([legacy.waitFor(count), eio.waitFor(count), sdkReceived.waitFor(count, 20_000)])
    },
  }
  return { node, producer, clients, prefix }
}

/** SIGKILL, then the same node started again on its ports while `meanwhile` publishes elsewhere. */
async function crash(
  t: ExecutionContext,
  node: RunningCli,
  prefix: string,
  meanwhile: () => Promise<unknown>,
): Promise<RunningCli> {
  node.child.kill('SIGKILL')
  await node.exited
  await meanwhile()
  return startCli(t, {
    workers: 0,
    env: envFor(prefix, {
      SNAPPER_GATEWAY_PORT: String(node.ports.gateway),
      SNAPPER_PRODUCER_PORT: String(node.ports.producer),
    }),
  })
}

test('a live consumer that got one batch since the last cursor flush: no client hands anything out twice', async t => {
  const { node, producer, clients, prefix } = await setUp(t)
  for (const message of numbers(20)) {
    t.is(await producer.publish('crash', message), 1)
    await pause(20) // traffic spaced out: each message is a batch of its own
  }
  await clients.waitFor(20)
  await pause(1500) // a cursor flush (every 1 s) has them all
  t.is(await producer.publish('crash', '21'), 1)
  await clients.waitFor(21)
  // Killed before the next flush: 21 was acknowledged, not persisted.
  const next = await crash(t, node, prefix, () =>
    producer.publish(numbers(5, 22).map(message => ['crash', message] as const)),
  )
  t.teardown(() => next.child.kill('SIGKILL'))
  await clients.waitFor(26)
  await holdsFor(
    () => Object.values(clients.received()).every(received => received.length === 26),
    300,
    'nothing more',
  )
  for (const [client, received] of Object.entries(clients.received()))
    t.deepEqual(received, numbers(26), client)
})

test('a burst acknowledged since the last cursor flush comes again: the SDK drops it all, the others get it again', async t => {
  // No acknowledgement is flushed before the kill: the next node starts from the joins.
  const { node, producer, clients, prefix } = await setUp(t, { SNAPPER_CURSOR_FLUSH_MS: '600000' })
  t.is(await producer.publish(numbers(100).map(message => ['crash', message] as const)), 100)
  await clients.waitFor(100)
  const next = await crash(t, node, prefix, () => producer.publish('crash', '101'))
  t.teardown(() => next.child.kill('SIGKILL'))
  // The burst comes again before 101: wait for the whole of it, not a count the repeat alone reaches.
  await eventually(
    () =>
      Object.values(clients.received()).every(messages => messages.includes('101')) &&
      clients.received()['snapper-consumer'].length >= 201 &&
      clients.received()['engine.io-client'].length >= 201,
    {
      what: 'every client to get 101, and the two that repeat to get the burst again first',
      timeoutMs: 20_000,
    },
  )
  const received = clients.received()
  for (const [client, messages] of Object.entries(received))
    t.deepEqual([...new Set(messages)], numbers(101), `${client}: everything, in order, nothing lost`)
  t.is(duplicates(received.sdk), 0)
  t.log(
    'handed out twice:',
    Object.entries(received)
      .map(([client, messages]) => `${client} ${duplicates(messages)}`)
      .join(', '),
  )
})

// A release stores the batch in flight (a, b); a node that crashes leaves that record behind, though
// its session got (a, b) again and acknowledged it. Rebuilt from the cursor after b, the record made
// a batch of c, d under the id of (a, b), which a client drops as the repeat of its last batch.
test('a batch in flight at a release, acknowledged on a node that then crashed: what came after it is not sent under its id', async t => {
  const prefix = uniquePrefix()
  const stays = await startBroker(t, server.url, { redisPrefix: prefix })
  const crashes = await startCli(t, { workers: 0, env: envFor(prefix, { SNAPPER_NODE_TTL_MS: '1000' }) })
  const producer = new Producer({ port: stays.ports.producer, secret: TEST_SECRET, id: 'crash' })
  t.teardown(() => producer.close())
  const userId = newUserId()
  const room = `user${userId}`
  const token = producer.signConsumerToken({ userId })
  const first = new RawConsumer(stays.ports.gateway, token)
  t.teardown(() => first.socket.close())
  await first.opened()
  t.is(
    await producer.publish([
      [room, 'a'],
      [room, 'b'],
    ]),
    2,
  )
  await first.until(() => first.batches.length === 1)
  first.socket.close() // not acknowledged: released with (a, b) in flight
  await eventually(() => stays.node.online === 0, { what: 'the session to be released' })

  const second = new RawConsumer(crashes.ports.gateway, token)
  t.teardown(() => second.socket.close())
  await second.opened()
  await second.until(() => second.batches.length === 1)
  t.deepEqual(second.batches[0], first.batches[0], 'the batch in flight again, same id')
  second.ack(second.batches[0]!.id)
  await pause(1500) // a cursor flush (every 1 s) has b
  crashes.child.kill('SIGKILL')
  await crashes.exited
  t.is(
    await producer.publish([
      [room, 'c'],
      [room, 'd'],
    ]),
    2,
  )

  const third = new RawConsumer(stays.ports.gateway, token)
  t.teardown(() => third.socket.close())
  await third.opened()
  await third.until(() => third.batches.length === 1, 15_000)
  t.deepEqual(third.batches[0]!.params, ['c', 'd'])
  t.not(third.batches[0]!.id, first.batches[0]!.id, 'snapper-consumer would drop c and d')
})

test('a tracked message amid plain ones, acknowledged before a crash, comes again: each client is in its receipt once, at its first ack', async t => {
  const { node, producer, clients, prefix } = await setUp(t, { SNAPPER_CURSOR_FLUSH_MS: '600000' })
  const before = producer.publish(numbers(3).map(message => ['crash', message] as const))
  const tracked = producer.track('crash', '4')
  await Promise.all([before, producer.publish(numbers(3, 5).map(message => ['crash', message] as const))])
  const { id } = await tracked
  await clients.waitFor(7)
  await eventually(async () => (await producer.receipt(id)).acked.length === 3, { what: 'three acks' })
  const first = await producer.receipt(id)
  const next = await crash(t, node, prefix, () => producer.publish('crash', '8'))
  t.teardown(() => next.child.kill('SIGKILL'))
  // Nothing was flushed: the two clients that repeat get 1..7 again, and acknowledge them again.
  await eventually(
    () =>
      clients.received()['snapper-consumer'].length >= 15 &&
      clients.received()['engine.io-client'].length >= 15,
    { what: 'the repeat', timeoutMs: 20_000 },
  )
  await clients.waitFor(8)
  t.deepEqual(clients.received()['snapper-consumer'], [...numbers(7), ...numbers(8)], 'acknowledged twice')
  await pause(300) // a second receipt write would be in by now
  t.deepEqual(await producer.receipt(id), first)
})
