/**
 * The node-wide bound on what uWS buffers towards websocket consumers
 * (consumerMaxBackpressureBytesTotal, src/gateway/engineio/buffered-bytes.ts): consumers that do
 * not read, each under its own bound, are cut once their sum is past it, biggest first; a reader
 * in the same room is never cut, and a consumer cut comes back to what it missed.
 */
import test from 'ava'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { Registry } from '../../src/metrics/index.js'
import { registerNodeMetrics } from '../../src/metrics/node.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually } from '../helpers/eventually.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])
const MAX_TOTAL = 2 << 20
const STALLED = 6

test('consumers that do not read are cut once all buffers pass consumerMaxBackpressureBytesTotal; a reader in their room gets every message in order, and a consumer cut comes back to what it missed', async t => {
  // Each stalled consumer may hold 16 MiB on its own: only the node-wide bound cuts them.
  const broker = await startBroker(t, server.url, {
    consumerMaxBackpressureBytes: 16 << 20,
    consumerMaxBackpressureBytesTotal: MAX_TOTAL,
    consumerMaxInputBytesPerSec: 0,
    pingIntervalMs: 60_000,
    pingTimeoutMs: 60_000,
  })
  const producer = await connectProducer(t, broker.ports.producer)
  const claims = Array.from({ length: STALLED + 1 }, () => ({
    userId: newUserId(),
    exp: Math.floor(Date.now() / 1000) + 3600,
  }))
  const [readerClaim, ...stalledClaims] = claims
  const reader = new RawConsumer(broker.ports.gateway, tokens.sign(readerClaim!))
  const stalled = stalledClaims.map(claim => new RawConsumer(broker.ports.gateway, tokens.sign(claim)))
  t.teardown(() => [reader, ...stalled].forEach(consumer => consumer.socket.terminate()))
  await Promise.all([reader, ...stalled].map(consumer => consumer.opened()))
  for (const claim of claims) await call(producer.joinRoom('busy', consumerIdOf(claim)))

  const received: string[] = []
  let acked = 0
  reader.socket.on('message', () => {
    while (acked < reader.batches.length) {
      const batch = reader.batches[acked++]!
      received.push(...batch.params)
      reader.ack(batch.id)
    }
  })
  let highest = 0
  const sample = setInterval(() => (highest = Math.max(highest, broker.gateway.engine.bufferedBytes)), 5)
  t.teardown(() => clearInterval(sample))

  // The stalled consumers stop reading and ask for 12 MB of echoes each (the kernel takes a few
  // MB per socket, uWS buffers the rest), while the room gets messages.
  for (const consumer of stalled)
    (consumer.socket as unknown as { _socket: { pause(): void } })._socket.pause()
  const params = ['y'.repeat(4000)]
  const messages: string[] = []
  for (let round = 0; round < 30; round++) {
    for (const consumer of stalled)
      for (let i = 0; i < 100; i++)
        consumer.send({ jsonrpc: '2.0', id: round * 100 + i + 1, method: 'echo', params })
    const batch = Array.from({ length: 20 }, (_, i) => `${round * 20 + i}:${'m'.repeat(1000)}`)
    messages.push(...batch)
    await broker.core.producerApi.publish(batch.map(message => ['busy', message] as const))
  }

  await eventually(() => stalled.every(consumer => consumer.closed), { timeoutMs: 60_000 })
  await eventually(() => received.length >= messages.length, { timeoutMs: 30_000 })
  t.deepEqual(received, messages, 'the reader got every message, in order')
  t.false(reader.closed, 'the reader was never cut')
  t.is(broker.gateway.engine.tooSlow.node, STALLED)
  t.is(broker.gateway.engine.tooSlow.session, 0)
  // A socket is cut on a send past the bound once it holds a sixteenth of its own bound (1 MiB
  // here) and the average: until then each may add that much.
  t.true(highest <= MAX_TOTAL + STALLED * (1 << 20) + 64 * 1024, `highest buffered total ${highest}`)
  t.true(highest > MAX_TOTAL / 2, `the stalled consumers did buffer (${highest})`)
  const registry = new Registry()
  registerNodeMetrics(registry, { core: broker.core, node: broker.node, engine: broker.gateway.engine })
  const metrics = await registry.metrics()
  t.true(
    metrics.includes(
      `snapper_consumer_too_slow_total{reason="consumerMaxBackpressureBytesTotal"} ${STALLED}`,
    ),
    'counted on /metrics',
  )
  t.regex(metrics, /^snapper_consumer_buffered_bytes \d+$/m)

  // A consumer cut comes back with snapper-consumer and gets, from its cursor, all it missed.
  const back = connectConsumer('v3 websocket', broker.ports.gateway, tokens.sign(stalledClaims[0]!))
  t.teardown(() => back.close())
  await back.opened()
  await back.waitFor(messages.length, 30_000)
  t.deepEqual(back.messages, messages, 'the consumer cut got what it missed, in order')
})
