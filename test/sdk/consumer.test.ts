/**
 * The consumer SDK against a whole node on a real Redis: both codecs on both
 * transports get every message with its room and seq, in order; the SDK's
 * producer feeds them. Refusals come back as SnapperErrors.
 */
import { createServer, type ServerResponse } from 'node:http'
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
  type Socket,
} from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { startBroker, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { Consumer, SnapperError, type MessageMeta } from '../../src/sdk/consumer/node.js'
import { Producer } from '../../src/sdk/producer/index.js'
import { eventually, holdsFor, within } from '../helpers/eventually.js'
import { collect, consumerFor } from './helpers.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

for (const codec of ['json', 'msgpack'] as const) {
  for (const transport of ['websocket', 'polling'] as const) {
    test(`${codec} over ${transport}: messages arrive in order with their room and seq`, async t => {
      const broker = await startBroker(t, server.url)
      const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'sdk-test' })
      t.teardown(() => producer.close())
      const userId = newUserId()
      const consumer = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId }), {
        codec,
        transports: [transport],
      })
      const received = collect(consumer)
      const consumerId = await consumer.connect()
      t.is(consumer.transport, transport)
      t.regex(consumerId, /^t\./)
      t.is(consumer.id, consumerId)
      t.is(await producer.subscribe('project', consumerId), 1)
      // Escapes, quotes and non-ASCII travel intact in both codecs.
      const messages = ['{"e":"change","d":{"title":"\\"quoted\\" ü 🚀"}}', 'two', 'three\n']
      t.is(await producer.publish(messages.map(message => ['project', message] as const)), 3)
      t.is(await producer.publish(`user${userId}`, 'own room'), 1)
      await received.waitFor(4)
      const inProject = received.all.filter(([, meta]) => meta.room === 'project')
      t.deepEqual(
        inProject.map(([message]) => message),
        messages,
      )
      const seqs = inProject.map(([, meta]) => meta.seq)
      t.deepEqual(seqs, [seqs[0]!, seqs[0]! + 1, seqs[0]! + 2])
      const own = received.all.find(([, meta]) => meta.room === `user${userId}`)
      t.is(own?.[0], 'own room')
      t.true(Math.abs((own?.[1] as MessageMeta).storedAtMs - Date.now()) < 60_000)
    })
  }
}

test('behind a proxy that passes no websocket, the consumer falls back to polling, and stays there when its upgrade probe fails', async t => {
  const broker = await startBroker(t, server.url)
  const proxy = await httpOnlyProxy(broker.ports.gateway)
  t.teardown(() => proxy.close())
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'x' })
  t.teardown(() => producer.close())
  const userId = newUserId()
  const consumer = consumerFor(t, proxy.port, producer.signConsumerToken({ userId }), { codec: 'msgpack' })
  const received = collect(consumer)
  await consumer.connect()
  t.is(consumer.transport, 'polling')
  const id = consumer.id
  // The first websocket (the attempt's) and the probe of the polling session, both refused by the proxy.
  await eventually(() => proxy.upgrades.length === 2, { timeoutMs: 5000, what: 'the upgrade probe' })
  const probe = new URLSearchParams(proxy.upgrades[1]!.split('?')[1])
  t.is(probe.get('sid'), id ?? null, 'the probe names the session')
  t.is(probe.get('transport'), 'websocket')
  await producer.publish(`user${userId}`, 'through the proxy')
  await received.waitFor(1)
  t.deepEqual(received.messages(), ['through the proxy'])
  t.is(consumer.transport, 'polling')
  t.is(consumer.state, 'open')
  t.is(consumer.id, id, 'the same session')
})

test('a session opened on polling moves to a websocket (the Engine.IO upgrade): same session, every message once and in order', async t => {
  const broker = await startBroker(t, server.url)
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'up' })
  t.teardown(() => producer.close())
  const userId = newUserId()
  const room = `user${userId}`
  const consumer = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId }), {
    transports: ['polling', 'websocket'],
  })
  const states: string[] = []
  consumer.on('state', (state, { transport }) => states.push(`${state}${transport ? ` ${transport}` : ''}`))
  const received = collect(consumer)
  await consumer.connect()
  const id = consumer.id
  // Publishing all along from the moment the session opened on polling: through the hand-over, on the websocket.
  let sent = 0
  let isPublishing = true
  const publishing = (async () => {
    while (isPublishing || sent < 60) {
      await producer.publish(room, `m${++sent}`)
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  })()
  await eventually(() => consumer.transport === 'websocket', { timeoutMs: 5000, what: 'the upgrade' })
  isPublishing = false
  await publishing
  await received.waitFor(sent)
  t.deepEqual(
    received.messages(),
    Array.from({ length: sent }, (_, i) => `m${i + 1}`),
  )
  const seqs = received.all.map(([, meta]) => meta.seq)
  t.deepEqual(
    seqs,
    Array.from({ length: sent }, (_, i) => seqs[0]! + i),
  )
  t.is(consumer.id, id, 'the same session')
  t.deepEqual(states, ['connecting', 'open polling', 'open websocket'])
  const counts = await producer.consumers(userId)
  t.is(counts.length, 1, 'one connection for the user')
})

test('a polling session whose server offers no upgrade (upgrades: []) probes no websocket', async t => {
  // A bare Engine.IO 4 server: polling only, the open packet offers nothing to upgrade to, later polls are held.
  let upgrades = 0
  const held = new Set<ServerResponse>()
  const bare = createServer((req, res) => {
    if (!req.url?.includes('sid=')) {
      res.end('0{"sid":"bare1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}')
      return
    }
    held.add(res)
  })
  bare.on('upgrade', (_req, socket) => {
    upgrades++
    socket.destroy()
  })
  const port = await listenUntilTeardown(t, bare, held)
  const consumer = consumerFor(t, port, freshUserToken())
  await consumer.connect()
  t.is(consumer.transport, 'polling')
  t.is(upgrades, 1, "the attempt's websocket, before polling")
  await holdsFor(() => upgrades === 1, 500, 'no upgrade probe')
  t.is(consumer.transport, 'polling')
})

test('a handshake that hangs ends after openTimeoutMs, on each transport, and the consumer retries later', async t => {
  // Accepts every connection and answers nothing: a proxy that holds the request.
  const requests: string[] = []
  const sockets = new Set<Socket>()
  const silent = createNetServer(socket => {
    sockets.add(socket)
    socket.once('data', (chunk: Buffer) => requests.push(chunk.toString('latin1').split('\r\n')[0]!))
  })
  const port = await listenUntilTeardown(t, silent, sockets)
  // Long enough that each transport's request reaches the server before its timeout on a busy machine
  // (at 300 ms, one in ten runs beside two CPU burners timed polling out before its request was sent).
  const openTimeoutMs = 1500
  const consumer = consumerFor(t, port, freshUserToken(), { openTimeoutMs, reconnectMinMs: 60_000 })
  const startedAt = Date.now()
  const retrying = new Promise<string | undefined>(resolve =>
    consumer.on('state', (state, details) => {
      if (state === 'reconnecting') resolve(details.reason)
    }),
  )
  void consumer.connect().catch(() => {})
  t.is(await retrying, 'open timeout')
  const elapsed = Date.now() - startedAt
  t.true(
    elapsed >= 2 * openTimeoutMs && elapsed < 2 * openTimeoutMs + 5000,
    `${elapsed} ms for two transports of ${openTimeoutMs} ms each`,
  )
  t.is(requests.length, 2)
  t.regex(requests[0]!, /^GET \/websocket\/\?.*transport=websocket/)
  t.regex(requests[1]!, /^GET \/websocket\/\?.*transport=polling/)
  t.throws(() => new Consumer(`http://127.0.0.1:${port}`, { token: freshUserToken(), openTimeoutMs: 0 }), {
    instanceOf: TypeError,
  })
})

for (const transport of ['websocket', 'polling'] as const) {
  test(`over ${transport}, the path option works with and without its trailing slash`, async t => {
    const broker = await startBroker(t, server.url)
    for (const path of ['/websocket', '/websocket/']) {
      const consumer = consumerFor(t, broker.ports.gateway, freshUserToken(), {
        path,
        transports: [transport],
      })
      await within(consumer.connect(), 5000, `a consumer on ${path}`)
      t.is(consumer.transport, transport, path)
      consumer.close()
    }
  })
}

test('a bad token: connect() rejects with SnapperError 403 and the reason, and the consumer stops', async t => {
  const broker = await startBroker(t, server.url)
  const token = new Producer({ secret: 'not the broker secret', id: 'x' }).signConsumerToken({
    userId: newUserId(),
  })
  const consumer = consumerFor(t, broker.ports.gateway, token)
  const error = await t.throwsAsync(consumer.connect(), { instanceOf: SnapperError })
  t.is(error?.code, 403)
  t.is(error?.reason, 'Error: Invalid signature')
  t.is(consumer.state, 'closed')
})

test('websocket only and a bad token: the consumer keeps trying (a refused upgrade says nothing why)', async t => {
  const broker = await startBroker(t, server.url)
  const token = new Producer({ secret: 'other', id: 'x' }).signConsumerToken({ userId: newUserId() })
  const consumer = consumerFor(t, broker.ports.gateway, token, {
    transports: ['websocket'],
    reconnectMinMs: 50,
  })
  const retried = new Promise<number | undefined>(resolve =>
    consumer.on('state', (state, details) => {
      if (state === 'reconnecting') resolve(details.retryInMs)
    }),
  )
  void consumer.connect().catch(() => {})
  t.true(((await retried) ?? -1) >= 0)
  consumer.close()
})

test('an unknown codec is refused with 400 and a message saying which ones exist', async t => {
  const broker = await startBroker(t, server.url)
  const token = freshUserToken()
  const query = new URLSearchParams({ EIO: '4', transport: 'polling', token, codec: 'xml' })
  const response = await fetch(`http://127.0.0.1:${broker.ports.gateway}/websocket/?${query}`)
  t.is(response.status, 400)
  t.deepEqual(await response.json(), { code: 3, message: 'Unknown codec: use json or msgpack' })
  // The SDK refuses such a codec itself, before any request.
  t.throws(() => new Consumer('http://127.0.0.1:1', { token, codec: 'xml' as 'json' }), {
    instanceOf: TypeError,
  })
})

test('a full node answers 503 with Retry-After and retryAfterMs, and the consumer waits that long', async t => {
  const broker = await startBroker(t, server.url, { maxSessions: 1, consumerRetryAfterMs: 1500 })
  const producer = new Producer({ secret: TEST_SECRET, id: 'x' })
  const first = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId: newUserId() }))
  await first.connect()
  const query = new URLSearchParams({
    EIO: '4',
    transport: 'polling',
    token: producer.signConsumerToken({ userId: newUserId() }),
  })
  const response = await fetch(`http://127.0.0.1:${broker.ports.gateway}/websocket/?${query}`)
  t.is(response.status, 503)
  t.is(response.headers.get('retry-after'), '2')
  t.deepEqual(await response.json(), { code: 3, message: 'Too many sessions', retryAfterMs: 1500 })

  const second = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId: newUserId() }))
  const paced = firstRetryDelay(second)
  const connected = second.connect()
  const retryInMs = (await paced) ?? 0
  t.true(retryInMs >= 1500 && retryInMs <= 2250, `waits what the node said, jittered: ${retryInMs}`)
  first.close()
  await connected
  t.is(second.state, 'open')
})

test('a user past maxSessionsPerUser gets 429 with retryAfterMs, and the consumer waits and comes in once a place is free', async t => {
  const broker = await startBroker(t, server.url, { maxSessionsPerUser: 1, consumerRetryAfterMs: 1500 })
  const producer = new Producer({ secret: TEST_SECRET, id: 'x' })
  const userId = newUserId()
  const first = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId, source: 'ios' }))
  await first.connect()
  // Another consumer of the same user (another token: another consumer id), with the SDK's default transport.
  const second = consumerFor(
    t,
    broker.ports.gateway,
    producer.signConsumerToken({ userId, source: 'android' }),
  )
  const paced = firstRetryDelay(second)
  const connected = second.connect()
  const retryInMs = (await paced) ?? 0
  t.true(retryInMs >= 1500 && retryInMs <= 2250, `waits what the node said, jittered: ${retryInMs}`)
  t.is(second.state, 'reconnecting', 'not closed for good: a place may come free')
  first.close()
  await connected
  t.is(second.state, 'open')
})

/** The delay the consumer's first retry waits, once it goes reconnecting. */
function firstRetryDelay(consumer: Consumer): Promise<number | undefined> {
  return new Promise(resolve =>
    consumer.on('state', (state, details) => {
      if (state === 'reconnecting') resolve(details.retryInMs)
    }),
  )
}

/** An HTTP proxy to the gateway that drops websocket upgrades, as some corporate proxies do. */
/** Listens on a free loopback port; when the test ends, destroys `open` (what the server holds) and closes. */
async function listenUntilTeardown(
  t: ExecutionContext,
  server: NetServer,
  open: ReadonlySet<{ destroy(): void }>,
): Promise<number> {
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const handle of open) handle.destroy()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

/** A valid consumer token (the broker's test secret) of a fresh user. */
const freshUserToken = (): string =>
  new Producer({ secret: TEST_SECRET, id: 'x' }).signConsumerToken({ userId: newUserId() })

/** An HTTP proxy to the gateway that refuses every websocket (it records their URLs). */
async function httpOnlyProxy(
  gatewayPort: number,
): Promise<{ port: number; upgrades: string[]; close(): void }> {
  const upgrades: string[] = []
  const proxy = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = req.method === 'POST' ? Buffer.concat(chunks) : undefined
      fetch(`http://127.0.0.1:${gatewayPort}${req.url ?? '/'}`, {
        method: req.method,
        body,
        headers: { 'content-type': req.headers['content-type'] ?? 'text/plain' },
      }).then(
        async answer => {
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' })
          res.end(Buffer.from(await answer.arrayBuffer()))
        },
        () => res.writeHead(502).end(),
      )
    })
  })
  proxy.on('upgrade', (req, socket) => {
    upgrades.push(req.url ?? '')
    socket.destroy()
  })
  await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
  const address = proxy.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    upgrades,
    close: () => proxy.close(),
  }
}
