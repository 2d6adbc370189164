/**
 * The producer SDK against a whole node on a real Redis: every method's
 * answer, its errors as SnapperErrors with the broker's code, reason and
 * detail, batches split to fit the broker's frame limit (and stopped at a
 * chunk that fails), the in-flight bound, a call resent over a new
 * connection when its answer was lost, close() waiting for calls made
 * before the connection opened, and tracked messages' receipts.
 */
import test, { type ExecutionContext } from 'ava'
import { createServer, type AddressInfo } from 'node:net'
import type { Config } from '../../src/config/defaults.js'
import { encodeBulk, isFramingError, RespDecoder } from '../../src/producer/resp.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { eventually } from '../helpers/eventually.js'
import { freePort } from '../helpers/ports.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { startRedisProxy } from '../helpers/redis-proxy.js'
import {
  Producer,
  SDK_ERRORS,
  SnapperError,
  type ConsumerTokenClaims,
  type ProducerState,
} from '../../src/sdk/producer/index.js'
import { collect, consumerFor } from './helpers.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('a wrong secret: connect() and every call reject with SnapperError 401 and the reason', async t => {
  const broker = await startBroker(t, server.url)
  const producer = new Producer({ port: broker.ports.producer, secret: 'wrong', id: 'p' })
  const publishing = producer.publish('room', 'message')
  const error = await t.throwsAsync(producer.connect(), { instanceOf: SnapperError })
  t.is(error?.code, 401)
  t.is(error?.message, 'Unauthorized')
  t.is(error?.reason, 'Error: Invalid signature')
  t.is((await t.throwsAsync(publishing, { instanceOf: SnapperError }))?.code, 401)
  t.is(producer.state, 'closed')
})

test('publish, subscribe, unsubscribe, consumers: the answers a user reads', async t => {
  const broker = await startBroker(t, server.url)
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'p' })
  t.teardown(() => producer.close())
  await producer.connect()
  t.is(producer.state, 'open')
  const userId = newUserId()
  const consumer = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId, source: 'ios' }))
  const received = collect(consumer)
  await consumer.connect()
  t.regex(consumer.id!, /^i\./)
  t.deepEqual(await producer.consumers(userId), { length: 1, android: 0, ios: 1, web: 0 })
  t.is(await producer.subscribe('team', consumer.id!), 1)
  t.is(await producer.subscribe('team', consumer.id!), null)
  t.is(await producer.publish('team', 'one'), 1)
  t.is(
    await producer.publish([
      ['team', 'two'],
      ['', 'skipped: no room'],
      ['team', 'three'],
    ]),
    2,
  )
  t.is(await producer.publish([]), 0)
  await received.waitFor(3)
  t.deepEqual(received.messages(), ['one', 'two', 'three'])
  t.is(await producer.unsubscribe('team', consumer.id!), 1)
  t.is(await producer.unsubscribe('team', consumer.id!), null)
})

test('bad input: the broker code, message and reason, and the producer goes on', async t => {
  const broker = await startBroker(t, server.url)
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'p' })
  t.teardown(() => producer.close())
  const invalid = await t.throwsAsync(producer.subscribe('room', ''), { instanceOf: SnapperError })
  t.deepEqual([invalid?.code, invalid?.message], [-32602, 'Invalid params'])
  const empty = await t.throwsAsync(producer.publish('', 'no room'), { instanceOf: SnapperError })
  t.is(empty?.code, -32602)
  t.throws(() => producer.signConsumerToken({ userId: 'not hex' }), { instanceOf: SnapperError })
  t.is(await producer.publish('room', 'still fine'), 1)
})

test('a subscribe past maxRoomsPerConsumer: SnapperError -32009 with the code as reason and the bound in detail, not temporary', async t => {
  const broker = await startBroker(t, server.url, { maxRoomsPerConsumer: 1 })
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'p' })
  t.teardown(() => producer.close())
  t.is(await producer.subscribe('first', 't.consumer'), 1)
  const full = await t.throwsAsync(producer.subscribe('second', 't.consumer'), { instanceOf: SnapperError })
  t.deepEqual(
    [full?.code, full?.message, full?.reason, full?.isTemporary, full?.detail],
    [
      -32009,
      'Consumer is in too many rooms',
      'CONSUMER_ROOMS_FULL',
      false,
      'the consumer is in 1 rooms (maxRoomsPerConsumer): leave one first',
    ],
  )
  t.is(await producer.subscribe('first', 't.consumer'), null, 'a room it is in: as before')
})

const SMALL_FRAME_BYTES = 4096

/** A broker and producer whose frames hold 4 KiB, and a consumer of a new user, connected. */
async function withSmallFrames(t: ExecutionContext, config: Partial<Config> = {}) {
  const maxFrameBytes = SMALL_FRAME_BYTES
  const broker = await startBroker(t, server.url, { maxFrameBytes, ...config })
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'p', maxFrameBytes })
  t.teardown(() => producer.close())
  const userId = newUserId()
  const consumer = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId }))
  const received = collect(consumer)
  await consumer.connect()
  return { producer, userId, received }
}

test('a batch larger than one frame goes in several, in order; a message larger than a frame is refused', async t => {
  const { producer, userId, received } = await withSmallFrames(t)
  const messages = Array.from({ length: 100 }, (_, i) => `${i}:${'x'.repeat(200)}`)
  // A call made after the batch is stored after all of it, though the chunks go one after the other.
  const [count, after] = await Promise.all([
    producer.publish(messages.map(message => [`user${userId}`, message] as const)),
    producer.publish(`user${userId}`, 'after the batch'),
  ])
  t.deepEqual([count, after], [100, 1])
  await received.waitFor(101)
  t.deepEqual(received.messages(), [...messages, 'after the batch'])
  const tooLarge = await t.throwsAsync(producer.publish('room', 'y'.repeat(SMALL_FRAME_BYTES)), {
    instanceOf: SnapperError,
  })
  t.is(tooLarge?.code, SDK_ERRORS.BAD_INPUT)
  t.is(await producer.publish('room', 'the connection is still up'), 1)
})

test("a frame the broker refuses as too large (its maxFrameBytes below the producer's): that call rejects with the broker's error, the others are stored", async t => {
  const broker = await startBroker(t, server.url, { maxFrameBytes: 64 * 1024 })
  const producer = new Producer({
    port: broker.ports.producer,
    secret: TEST_SECRET,
    id: 'p',
    requestTimeoutMs: 10_000,
  })
  t.teardown(() => producer.close())
  let opens = 0
  producer.on('state', state => {
    if (state === 'open') opens++
  })
  producer.on('error', () => {}) // the broker's refusal comes as an `error` event too
  const startedAtMs = Date.now()
  const [before, tooLarge, after] = await Promise.allSettled([
    producer.publish('room', 'before'),
    producer.publish('room', 'x'.repeat(100_000)),
    producer.publish('room', 'after'),
  ])
  // Before: the broker closed the connection on that frame, the producer sent it again on the next
  // one, 12 times a second, until it and every call behind it timed out (requestTimeoutMs).
  t.deepEqual(
    [before, after],
    [
      { status: 'fulfilled', value: 1 },
      { status: 'fulfilled', value: 1 },
    ],
  )
  t.is(tooLarge.status, 'rejected')
  const error = (tooLarge as PromiseRejectedResult).reason as SnapperError
  t.like(error, { code: -32600, message: 'Frame too large', reason: 'FRAME_TOO_LARGE', isTemporary: false })
  t.true(Date.now() - startedAtMs < 5000, 'answered, not timed out')
  t.true(opens <= 2, `${opens} connections`)
})

test('no more than maxInFlight calls wait for answers; the rest wait for a slot', async t => {
  const broker = await startBroker(t, server.url)
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'p', maxInFlight: 3 })
  t.teardown(() => producer.close())
  await producer.connect()
  const calls = Array.from({ length: 20 }, (_, i) => producer.publish('bound', String(i)))
  t.deepEqual(producer.pending, { inFlight: 3, waiting: 17 })
  t.deepEqual(await Promise.all(calls), Array<number>(20).fill(1))
  t.deepEqual(producer.pending, { inFlight: 0, waiting: 0 })
})

test('a lost answer: the call goes again over the next connection; close() waits for answers', async t => {
  const broker = await startBroker(t, server.url)
  const proxy = await startRedisProxy(broker.ports.producer) // a plain TCP proxy
  t.teardown(() => proxy.close())
  const port = Number(new URL(proxy.url).port)
  const producer = new Producer({ port, secret: TEST_SECRET, id: 'p', reconnectMinMs: 20 })
  const states: string[] = []
  producer.on('state', state => states.push(state))
  await producer.connect()
  const userId = newUserId()
  const consumer = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId }))
  const received = collect(consumer)
  await consumer.connect()
  proxy.loseReplyTo('lost answer') // stored, but the connection drops before its answer arrives
  t.is(await producer.publish(`user${userId}`, 'lost answer'), 1)
  t.is(proxy.cuts, 1)
  t.deepEqual(states, ['connecting', 'open', 'reconnecting', 'open'])
  const last = producer.publish(`user${userId}`, 'last')
  await producer.close()
  t.is(await last, 1)
  t.is(producer.state, 'closed')
  const closed = await t.throwsAsync(producer.publish('room', 'late'), { instanceOf: SnapperError })
  t.is(closed?.code, SDK_ERRORS.CLOSED)
  // Sent again because its answer was lost, it is stored twice: at least once, like every retrying client.
  await received.waitFor(3)
  t.deepEqual(received.messages(), ['lost answer', 'lost answer', 'last'])
})

test('track and receipt: the id of a stored message, then who acknowledged it and when', async t => {
  const broker = await startBroker(t, server.url)
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'p' })
  t.teardown(() => producer.close())
  const userId = newUserId()
  const consumer = consumerFor(t, broker.ports.gateway, producer.signConsumerToken({ userId, source: 'ios' }))
  const received = collect(consumer)
  await consumer.connect()
  const before = Date.now()
  const { id } = await producer.track(`user${userId}`, 'tracked')
  t.is(typeof id, 'string')
  await received.waitFor(1)
  t.deepEqual(received.messages(), ['tracked'])
  const receipt = await eventually(async () => {
    const answer = await producer.receipt(id)
    return answer.acked.length > 0 && answer
  })
  t.deepEqual(
    receipt.acked.map(({ consumerId, userId, platform }) => ({ consumerId, userId, platform })),
    [{ consumerId: consumer.id!, userId, platform: 'ios' as const }],
  )
  t.true(receipt.acked[0]!.ackedAt >= before - 1000 && receipt.acked[0]!.ackedAt <= Date.now() + 1000)
  t.false(receipt.escalated)
  const unknown = await t.throwsAsync(producer.receipt('no-such-id'), { instanceOf: SnapperError })
  t.is(unknown?.reason, 'UNKNOWN_ID')
})

test('a broker Redis cannot store for: the rejection carries its code, temporary, and its explanation in `detail`', async t => {
  const redis = await startRedis(['--maxmemory-policy', 'noeviction'])
  t.teardown(() => redis.stop())
  const broker = await startBroker(t, redis.url)
  const producer = new Producer({ port: broker.ports.producer, secret: TEST_SECRET, id: 'p' })
  t.teardown(() => producer.close())
  await producer.connect()
  await redis.client().config('SET', 'maxmemory', '1') // full: every write refused with OOM
  const full = await t.throwsAsync(producer.publish('room', 'no room left'), { instanceOf: SnapperError })
  await redis.client().config('SET', 'maxmemory', '0')
  t.deepEqual(
    [full?.code, full?.message, full?.reason, full?.isTemporary, full?.detail],
    [
      -32003,
      'Storage unavailable, retry',
      'STORE_UNAVAILABLE',
      true,
      'Redis is out of memory (maxmemory reached): nothing was stored',
    ],
  )
  t.is(await producer.publish('room', 'stored again'), 1)
})

test('a split batch whose chunk is refused: the chunks after it are not sent, and storedUpTo says how far it got', async t => {
  const { producer, userId, received } = await withSmallFrames(t, { maxRoomsPerPublish: 5 })
  const own = `user${userId}`
  const padding = 'x'.repeat(200)
  // About 16 to a chunk: the first chunks name one room; the first one with others names more than 5 rooms, refused.
  const batch = [
    ...Array.from({ length: 40 }, (_, i) => [own, `a${i}:${padding}`] as const),
    ...Array.from({ length: 40 }, (_, i) => [`elsewhere${i}`, `b${i}:${padding}`] as const),
    ...Array.from({ length: 40 }, (_, i) => [own, `c${i}:${padding}`] as const),
  ]
  const refused = await t.throwsAsync(producer.publish(batch), { instanceOf: SnapperError })
  t.is(refused?.code, -32005)
  const storedUpTo = refused?.storedUpTo ?? -1
  t.true(storedUpTo > 0 && storedUpTo <= 80, `storedUpTo: ${storedUpTo}`)
  // The broker serves in order: what the batch stored arrives before this, and nothing of what followed the refusal.
  t.is(await producer.publish(own, 'after'), 1)
  const expected = [
    ...batch
      .slice(0, storedUpTo)
      .filter(([room]) => room === own)
      .map(([, message]) => message),
    'after',
  ]
  await received.waitFor(expected.length)
  t.deepEqual(received.messages(), expected)
  // A batch that fits one frame tells the same way: nothing stored.
  const whole = await t.throwsAsync(producer.publish(batch.slice(40, 50)), { instanceOf: SnapperError })
  t.deepEqual([whole?.code, whole?.storedUpTo], [-32005, 0])
})

test('close() before the connection is open, or while it reconnects, waits for the answers of the calls made so far', async t => {
  const broker = await startBroker(t, server.url)
  const proxy = await startRedisProxy(broker.ports.producer) // a plain TCP proxy
  t.teardown(() => proxy.close())
  const port = Number(new URL(proxy.url).port)

  const connecting = new Producer({ port, secret: TEST_SECRET, id: 'p' })
  const first = connecting.publish('room', 'made before the connection opened')
  t.is(connecting.state, 'connecting')
  await connecting.close()
  t.is(await first, 1)
  t.is(connecting.state, 'closed')

  const reconnecting = new Producer({ port, secret: TEST_SECRET, id: 'p', reconnectMinMs: 20 })
  await reconnecting.connect()
  const isReconnecting = nextState(reconnecting, 'reconnecting')
  proxy.down()
  await isReconnecting
  const second = reconnecting.publish('room', 'made while the broker cannot be reached')
  const closing = reconnecting.close()
  proxy.up()
  await closing
  t.is(await second, 1)
  t.is(reconnecting.state, 'closed')
})

test('close() with calls to a broker that cannot be reached: they time out, then it closes', async t => {
  const port = await freePort() // nothing listens there
  const producer = new Producer({
    port,
    secret: TEST_SECRET,
    id: 'p',
    requestTimeoutMs: 300,
    reconnectMinMs: 20,
  })
  const publishing = producer.publish('room', 'nowhere to go')
  await producer.close()
  const timedOut = await t.throwsAsync(publishing, { instanceOf: SnapperError })
  t.is(timedOut?.code, SDK_ERRORS.TIMEOUT)
  t.is(producer.state, 'closed')
})

test('a broker that cannot be reached: `error` events with code CONNECTION, temporary, the system error as cause', async t => {
  const port = await freePort() // nothing listens there
  const producer = new Producer({ port, secret: TEST_SECRET, id: 'p' })
  t.teardown(() => producer.close())
  const failed = new Promise<SnapperError>(resolve => producer.on('error', resolve))
  const retrying = nextState(producer, 'reconnecting')
  void producer.connect().catch(() => {}) // close() rejects it
  const error = await failed
  t.is(error.code, SDK_ERRORS.CONNECTION)
  t.true(error.isTemporary)
  t.is((error.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED')
  await retrying
})

test('signConsumerToken takes source web, ios or android only: another name would be counted by its first letter', t => {
  const producer = new Producer({ secret: TEST_SECRET, id: 'p' })
  for (const source of ['mobile', 'iPhone', 'Web', '', 'apple-tv']) {
    // What a JavaScript caller (no types) or a value from elsewhere can pass.
    const claims = { userId: newUserId(), source } as unknown as ConsumerTokenClaims
    const error = t.throws(() => producer.signConsumerToken(claims), { instanceOf: SnapperError })
    t.is(error?.code, SDK_ERRORS.BAD_INPUT, source)
  }
  for (const source of ['web', 'ios', 'android'] as const) {
    const token = producer.signConsumerToken({ userId: newUserId(), source })
    t.is(
      (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { source: string }).source,
      source,
    )
  }
})

test('signConsumerToken refuses an expiresInSec that is not a whole number of seconds above 0', t => {
  const producer = new Producer({ secret: TEST_SECRET, id: 'p' })
  for (const expiresInSec of [-5, 0, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    const error = t.throws(() => producer.signConsumerToken({ userId: newUserId(), expiresInSec }), {
      instanceOf: SnapperError,
    })
    t.is(error?.code, SDK_ERRORS.BAD_INPUT, String(expiresInSec))
  }
  const token = producer.signConsumerToken({ userId: newUserId(), expiresInSec: 60 })
  const { exp } = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }
  t.true(Math.abs(exp - (Date.now() / 1000 + 60)) < 2, `exp ${exp}`)
})

test('track refuses an escalateAfterMs that JSON cannot carry (NaN, ±Infinity) before sending anything', async t => {
  const producer = new Producer({ secret: TEST_SECRET, id: 'p', port: await freePort() })
  for (const escalateAfterMs of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    const error = await t.throwsAsync(producer.track('r', 'm', { escalateAfterMs }), {
      instanceOf: SnapperError,
    })
    t.is(error?.code, SDK_ERRORS.BAD_INPUT, String(escalateAfterMs))
  }
  t.is(producer.state, 'idle', 'nothing was sent: not even a connection')
})

test('a broker frame that is not a JSON object (null, [], 7, not JSON): an `error` event PROTOCOL, then the next connection', async t => {
  // No broker sends these: a loopback server stands in for one that is broken, one answer a connection.
  const answers = ['null', '[]', '7', '{not json', '{"jsonrpc":"2.0","id":"auth","result":"OK"}']
  const broker = createServer(socket => {
    const answer = answers.shift()
    socket.once('data', () => socket.write(encodeBulk(answer ?? '')))
  })
  await new Promise<void>(resolve => broker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => broker.close())
  const port = (broker.address() as AddressInfo).port
  const producer = new Producer({ port, token: 'any', id: 'p', reconnectMinMs: 10, reconnectMaxMs: 20 })
  t.teardown(() => producer.close())
  const errors: SnapperError[] = []
  producer.on('error', error => errors.push(error))
  await producer.connect()
  t.is(producer.state, 'open')
  t.deepEqual(
    errors.map(({ code, message }) => [code, message]),
    [
      ...['null', '[]', '7'].map(() => [SDK_ERRORS.PROTOCOL, 'a frame from the broker is not a JSON object']),
      [SDK_ERRORS.PROTOCOL, 'a frame from the broker is not JSON'],
    ],
  )
})

/** Resolves when the producer's state becomes `state`. */
const nextState = (producer: Producer, state: ProducerState): Promise<void> =>
  new Promise(resolve =>
    producer.on('state', next => {
      if (next === state) resolve()
    }),
  )

/**
 * A loopback stand-in for a broker that accepts any token and answers each
 * call with `answer(method)` as its result (a broker of another version, a
 * man in the middle).
 */
async function brokerAnswering(t: ExecutionContext, answer: (method: string) => unknown): Promise<number> {
  const broker = createServer(socket => {
    const decoder = new RespDecoder(1 << 20)
    socket.on('data', chunk => {
      decoder.push(chunk)
      for (
        let frame = decoder.next();
        frame !== undefined && !isFramingError(frame);
        frame = decoder.next()
      ) {
        const { id, method } = JSON.parse(frame.toString('utf8')) as { id: unknown; method: string }
        const result = method === 'auth' ? 'OK' : answer(method)
        socket.write(encodeBulk(JSON.stringify({ jsonrpc: '2.0', id, result })))
      }
    })
  })
  await new Promise<void>(resolve => broker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => broker.close())
  return (broker.address() as AddressInfo).port
}

test('answers of another shape than the typed result (a broker of another version): each call rejects with PROTOCOL, and the producer goes on', async t => {
  const wrong: Record<string, unknown> = {
    publish: 'OK',
    subscribe: 'yes',
    unsubscribe: 2,
    consumers: { length: '1', android: 0, ios: 0, web: 1 },
    track: { id: 7 },
    receipt: {
      acked: [{ consumerId: 'w.x', userId: 'u', platform: 'web', ackedAt: '1' }],
      moreAcks: 0,
      escalated: false,
    },
  }
  const port = await brokerAnswering(t, method => wrong[method])
  const producer = new Producer({ port, token: 'any', id: 'p' })
  t.teardown(() => producer.close())
  const calls: [string, Promise<unknown>][] = [
    ['publish', producer.publish('r', 'm')],
    ['publish', producer.publish([['r', 'm']])],
    ['subscribe', producer.subscribe('r', 'w.x')],
    ['unsubscribe', producer.unsubscribe('r', 'w.x')],
    ['consumers', producer.consumers('55a07f2dee06c78e1357b0ad')],
    ['track', producer.track('r', 'm')],
    ['receipt', producer.receipt('id')],
  ]
  for (const [method, call] of calls) {
    const error = await t.throwsAsync(call, { instanceOf: SnapperError }, method)
    t.is(error?.code, SDK_ERRORS.PROTOCOL, method)
    t.regex(error?.message ?? '', new RegExp(`^the broker's answer to ${method} is not `), method)
  }
  t.is(producer.state, 'open')
})

test('answers of the typed shapes from a stand-in broker are handed out as they are', async t => {
  const receipt = {
    acked: [{ consumerId: 'w.x', userId: '55a07f2dee06c78e1357b0ad', platform: 'web', ackedAt: 1 }],
    moreAcks: 2,
    escalated: true,
  }
  const right: Record<string, unknown> = {
    publish: 3,
    subscribe: null,
    consumers: { length: 1, android: 0, ios: 0, web: 1 },
    track: { id: 'r:1' },
    receipt,
  }
  const port = await brokerAnswering(t, method => right[method])
  const producer = new Producer({ port, token: 'any', id: 'p' })
  t.teardown(() => producer.close())
  t.is(
    await producer.publish([
      ['r', 'm'],
      ['r', 'n'],
      ['r', 'o'],
    ]),
    3,
  )
  t.is(await producer.subscribe('r', 'w.x'), null)
  t.deepEqual(await producer.consumers('55a07f2dee06c78e1357b0ad'), { length: 1, android: 0, ios: 0, web: 1 })
  t.deepEqual(await producer.track('r', 'm'), { id: 'r:1' })
  t.deepEqual(await producer.receipt('r:1'), receipt)
})

test('options a timer or a count cannot work with are refused when the producer is made, naming the option', t => {
  const bad: [string, number][] = [
    ['maxInFlight', 0],
    ['maxInFlight', Number.NaN],
    ['requestTimeoutMs', Number.NaN],
    ['requestTimeoutMs', -1],
    ['requestTimeoutMs', 2 ** 31],
    ['maxFrameBytes', 0],
    ['reconnectMinMs', Number.NaN],
    ['reconnectMaxMs', Number.POSITIVE_INFINITY],
    ['port', 70_000],
  ]
  for (const [name, value] of bad)
    t.throws(
      () => new Producer({ token: 't', id: 'p', [name]: value }),
      {
        instanceOf: TypeError,
        message: new RegExp(`^Producer: ${name} must be `),
      },
      `${name} ${value}`,
    )
})

test('a broker that accepts the token and closes at once: the reconnect delays grow as after failures, not the shortest each time', async t => {
  let connections = 0
  const broker = createServer(socket => {
    connections++
    socket.once('data', () => socket.end(encodeBulk('{"jsonrpc":"2.0","id":"auth","result":"OK"}')))
  })
  await new Promise<void>(resolve => broker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => broker.close())
  const port = (broker.address() as AddressInfo).port
  const producer = new Producer({ port, token: 'any', id: 'p', reconnectMinMs: 100, reconnectMaxMs: 2000 })
  t.teardown(() => producer.close())
  await producer.connect()
  await new Promise(resolve => setTimeout(resolve, 3000))
  // Delays from 100 ms doubling (50-100, 100-200, 200-400, 400-800, 800-1600): 6 connections in 3 s at
  // most. Before, the backoff started again at each accepted token: 41 connections.
  t.true(connections <= 7, `${connections} connections in 3 s`)
})
