/**
 * A Redis that hangs with its connections open (SIGSTOP here; a swap storm,
 * a long script, CLIENT PAUSE alike) fails no command: each just waits. The
 * node's watchdog PING (redisPingIntervalMs) is what notices, and from then
 * on what needs Redis is refused at once, as while it is down, instead of
 * waiting for it: admin routes and new consumer sessions get 503 with
 * Retry-After. SIGCONT, and everything is served again. What was already
 * waiting when Redis stalled waits redisRequestTimeoutMs at most.
 */
import test from 'ava'
import { Socket as Eio6Socket } from 'engine.io-client'
import { WebSocket } from 'ws'
import { pino } from 'pino'
import { consumerIdOf, Tokens, type ConsumerClaims } from '../../src/auth/token.js'
import { startNode, type RunningNode } from '../../src/cli/node.js'
import type { Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { HTTP_PRODUCER_HEADERS, newUserId, TEST_SECRET, testConfig } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, pause, within } from '../helpers/eventually.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { ask, type Answer } from '../helpers/ask.js'

const tokens = new Tokens([TEST_SECRET])

/**
 * A request answered by its own redisRequestTimeoutMs (1500 ms here) comes within this, with room
 * for a loaded CI machine; one left to the watchdog (its PING every 60 s there) would not.
 */
const BY_ITS_OWN_BOUND_MS = 10_000

async function stalledNode(t: import('ava').ExecutionContext, overrides: Partial<Config> = {}) {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const config = testConfig(redis.url, {
    drainTimeoutMs: 3000,
    redisPingIntervalMs: 200,
    consumerRetryAfterMs: 2500,
    ...overrides,
  })
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  // SIGCONT first: a drain against a stopped Redis would wait for its budget.
  t.teardown(async () => {
    redis.signal('SIGCONT')
    await node.stop()
  })
  return { redis, node, config }
}

/** Each entry point that needs Redis, as a client that gives up after `giveUpMs` asks it. */
function entryPoints(node: RunningNode, giveUpMs = 10_000): Record<string, () => Promise<Answer>> {
  const admin = `http://127.0.0.1:${node.ports.admin}`
  const gateway = `http://127.0.0.1:${node.ports.gateway}`
  const get =
    (url: string, init: RequestInit = {}) =>
    () =>
      ask(url, init, giveUpMs)
  const post = (path: string, body: unknown) =>
    get(`${admin}${path}`, { method: 'POST', headers: HTTP_PRODUCER_HEADERS, body: JSON.stringify(body) })
  return {
    'GET /stats': get(`${admin}/stats?token=${tokens.sign({ name: 'snapper' })}`),
    'GET /v1/users/:userId/consumers': get(`${admin}/v1/users/u1/consumers`, {
      headers: HTTP_PRODUCER_HEADERS,
    }),
    'POST /v1/publish': post('/v1/publish', { room: 'stalled', message: 'm' }),
    'POST /v1/rooms/:room/subscribe': post('/v1/rooms/stalled/subscribe', { consumerId: 'c1' }),
    'POST /v1/track': post('/v1/track', { room: 'stalled', message: 'm' }),
    'polling handshake': () =>
      ask(
        `${gateway}/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId: newUserId() })}`,
        {},
        giveUpMs,
      ),
  }
}

async function stopped(redis: RedisServer, node: RunningNode): Promise<void> {
  redis.signal('SIGSTOP')
  await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see Redis stalled' })
}

test('once the watchdog sees Redis stalled, admin routes and handshakes are refused at once with 503 and Retry-After, and served again after it', async t => {
  const { redis, node } = await stalledNode(t)
  await stopped(redis, node)
  for (const [name, request] of Object.entries(entryPoints(node))) {
    const answer = await request()
    t.is(answer.status, 503, `${name}: ${JSON.stringify(answer)}`)
    t.true(answer.tookMs < 1000, `${name} answered after ${answer.tookMs} ms`)
    t.truthy(answer.retryAfter, `${name} says when to come back`)
    if (name === 'polling handshake') t.regex(answer.body, /"retryAfterMs":2500/)
    else t.regex(answer.body, /"STORE_UNAVAILABLE"/)
  }
  const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.close())
  await t.throwsAsync(within(consumer.opened(), 3000, 'a websocket handshake to be refused'))

  redis.signal('SIGCONT')
  await eventually(() => node.redisWatchdog.isUp, { what: 'the watchdog to see Redis again' })
  const served = entryPoints(node)
  t.is((await served['GET /v1/users/:userId/consumers']!()).status, 200)
  t.is((await served['POST /v1/publish']!()).status, 200)
  t.is((await served['polling handshake']!()).status, 200)
})

test('a Redis busy with a backlog of appends longer than the PING timeout is not taken for one that hangs: handshakes, admin routes and /readyz are served', async t => {
  const { redis, node } = await stalledNode(t, { redisPingIntervalMs: 100, redisRequestTimeoutMs: 30_000 })
  const { commands } = node.core.redis
  let downSamples = 0
  const sampler = setInterval(() => void (node.redisWatchdog.isUp || downSamples++), 10)
  t.teardown(() => clearInterval(sampler))
  // Big publishes to many rooms, as an HTTP producer sends them, one per turn of the event loop (the
  // node stays free to read replies), each followed by a PING on `commands`: until one of those has
  // waited 1.5 s behind the appends queued there, longer than the watchdog's 1 s timeout.
  const pairs = Array.from({ length: 5000 }, (_, i) => [`busy${i % 1000}`, 'm'] as const)
  const stored: Promise<number>[] = []
  const waiting = new Set<number>() // when each PING not answered yet was sent
  let longestWaitMs = 0
  while (stored.length < 400 && longestWaitMs < 1500) {
    stored.push(node.core.producerApi.publish(pairs))
    const sentAtMs = Date.now()
    waiting.add(sentAtMs)
    void commands.ping().then(() => waiting.delete(sentAtMs))
    await new Promise(resolve => setImmediate(resolve))
    longestWaitMs = Date.now() - Math.min(...waiting)
  }
  t.true(
    longestWaitMs >= 1500,
    `${stored.length} publishes of 5000 messages made a PING wait ${longestWaitMs} ms only`,
  )
  // Served once the backlog before them is stored: on a loaded machine that can take longer than 10 s.
  const requests = entryPoints(node, 30_000)
  const [handshake, consumers, ready] = await Promise.all([
    requests['polling handshake']!(),
    requests['GET /v1/users/:userId/consumers']!(),
    ask(`http://127.0.0.1:${node.ports.admin}/readyz`, {}, 30_000),
  ])
  await Promise.all(stored)
  clearInterval(sampler)
  t.is(handshake.status, 200, JSON.stringify(handshake))
  t.is(consumers.status, 200, JSON.stringify(consumers))
  t.is(ready.status, 200, JSON.stringify(ready))
  t.is(downSamples, 0, 'the watchdog never saw Redis down')
  const messages = await redis.client().xlen(node.core.keys.room('busy0').log)
  t.is(messages, stored.length * 5, 'every message stored')
})

test('admin requests already waiting when Redis stalls are answered 503 after redisRequestTimeoutMs, a write saying it may still be done; it is, once, when Redis answers', async t => {
  // The watchdog PINGs far too rarely to see it: only the request's own bound answers.
  const { redis, node } = await stalledNode(t, { redisPingIntervalMs: 60_000, redisRequestTimeoutMs: 1500 })
  const requests = entryPoints(node)
  delete requests['polling handshake']
  redis.signal('SIGSTOP')
  const answers = await Promise.all(
    Object.entries(requests).map(async ([name, request]) => [name, await request()] as const),
  )
  for (const [name, answer] of answers) {
    t.is(answer.status, 503, `${name}: ${JSON.stringify(answer)}`)
    t.true(
      answer.tookMs >= 1400 && answer.tookMs < BY_ITS_OWN_BOUND_MS,
      `${name} answered after ${answer.tookMs} ms`,
    )
    t.is(answer.retryAfter, '1', name)
    const { data } = (JSON.parse(answer.body) as { error: { data: { code: string; reason: string } } }).error
    t.is(data.code, 'STORE_UNAVAILABLE', name)
    if (name.startsWith('POST'))
      t.is(
        data.reason,
        'Redis did not answer within 1500 ms (redisRequestTimeoutMs): this may still be done once it does',
        name,
      )
    else t.is(data.reason, 'Redis did not answer within 1500 ms (redisRequestTimeoutMs)', name)
  }
  redis.signal('SIGCONT')
  const client = redis.client()
  const log = node.core.keys.room('stalled').log
  // The publish and the tracked message that were answered 503 are stored all the same, each once.
  await eventually(async () => (await client.xlen(log)) === 2, { what: 'the two messages to be stored' })
  t.is((await requests['POST /v1/publish']!()).status, 200)
  await eventually(async () => (await client.xlen(log)) === 3, { what: 'the third message to be stored' })
})

test('a Redis the watchdog saw down serves as soon as its connection is ready again, not at the next PING; a stall after it is refused again', async t => {
  const { redis, node } = await stalledNode(t, { redisPingIntervalMs: 1000 })
  await redis.kill('SIGKILL')
  await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see Redis down' })
  await redis.restart()
  await eventually(() => node.core.redis.commands.status === 'ready', { what: 'the connection to be back' })
  t.true(node.core.redis.isReady(), 'takes commands before the next PING')
  await eventually(() => node.redisWatchdog.isUp, { what: 'the next PING to be answered' })
  await stopped(redis, node)
  const { 'GET /v1/users/:userId/consumers': consumers } = entryPoints(node)
  const refused = await consumers!()
  t.is(refused.status, 503)
  t.true(refused.tookMs < 1000, `answered after ${refused.tookMs} ms`)
})

test('handshakes already waiting when Redis stalls are refused after redisRequestTimeoutMs (polling 503 with retryAfterMs, a websocket closed 1013) and leave no session once Redis answers', async t => {
  // The watchdog PINGs far too rarely to see it: only the handshake's own bound answers.
  const { redis, node } = await stalledNode(t, { redisPingIntervalMs: 60_000, redisRequestTimeoutMs: 1500 })
  const gateway = `127.0.0.1:${node.ports.gateway}`
  const users = { polling: newUserId(), websocket: newUserId(), 'engine.io-client': newUserId() }
  const tokenOf = (userId: string): string => tokens.sign({ userId })
  redis.signal('SIGSTOP')
  const startedAtMs = Date.now()
  const polling = ask(`http://${gateway}/websocket/?EIO=4&transport=polling&token=${tokenOf(users.polling)}`)
  const websocket = new WebSocket(
    `ws://${gateway}/websocket/?EIO=4&transport=websocket&token=${tokenOf(users.websocket)}`,
  )
  const websocketClosed = new Promise<{ code: number; afterMs: number }>(resolve =>
    websocket.on('close', code => resolve({ code, afterMs: Date.now() - startedAtMs })),
  )
  // What an app on engine.io-client@6 sees: a close, after which it reconnects; not silence.
  const eio6 = new Eio6Socket(`http://${gateway}`, {
    path: '/websocket',
    query: { token: tokenOf(users['engine.io-client']) },
    transports: ['websocket'],
  })
  t.teardown(() => eio6.close())
  const eio6Closed = new Promise<{ reason: string; afterMs: number }>(resolve =>
    eio6.on('close', reason => resolve({ reason, afterMs: Date.now() - startedAtMs })),
  )

  const refused = await polling
  t.is(refused.status, 503, JSON.stringify(refused))
  t.true(
    refused.tookMs >= 1400 && refused.tookMs < BY_ITS_OWN_BOUND_MS,
    `polling answered after ${refused.tookMs} ms`,
  )
  t.is(refused.retryAfter, '3')
  t.is(refused.body, '{"code":3,"message":"Storage unavailable, retry","retryAfterMs":2500}')
  const closed = await within(websocketClosed, 5000, 'the websocket to be closed')
  t.is(closed.code, 1013)
  t.true(closed.afterMs >= 1400 && closed.afterMs < 3000, `websocket closed after ${closed.afterMs} ms`)
  const eio6End = await within(eio6Closed, 5000, 'engine.io-client to report the close')
  t.is(eio6End.reason, 'transport close')
  t.true(eio6End.afterMs < 3000, `engine.io-client closed after ${eio6End.afterMs} ms`)
  t.is(node.gateway.engine.sessions.size, 0)

  redis.signal('SIGCONT')
  // Their takeovers ran once Redis went on, and were let go: nothing of them stays live.
  await eventually(() => node.node.online === 0 && node.node.takingOver === 0, {
    what: 'the refused handshakes to be let go',
  })
  const admin = `http://127.0.0.1:${node.ports.admin}`
  for (const [name, userId] of Object.entries(users)) {
    const counted = await ask(`${admin}/v1/users/${userId}/consumers`, { headers: HTTP_PRODUCER_HEADERS })
    t.is(counted.body, '{"result":{"length":0,"android":0,"ios":0,"web":0}}', name)
  }
  // They come back as any consumer does, and get what is published then, once.
  for (const [name, userId] of Object.entries(users)) {
    const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokenOf(userId))
    t.teardown(() => consumer.close())
    await within(consumer.opened(), 5000, `${name} to open again`)
    const published = await ask(`${admin}/v1/publish`, {
      method: 'POST',
      headers: HTTP_PRODUCER_HEADERS,
      body: JSON.stringify({ room: `user${userId}`, message: `to ${name}` }),
    })
    t.is(published.status, 200, name)
    await consumer.waitFor(1, 5000)
    await pause(300) // time for a repeat to show
    t.deepEqual(consumer.messages, [`to ${name}`], name)
  }
})

// A takeover waits for the holder's `released` (takeoverWaitMs), then takes the consumer in Redis: a drain
// meanwhile waits for that take (BrokerNode.#release), which waits for a Redis that does not answer.
for (const thaw of ['after the drain', 'never'] as const) {
  test(`a drain while Redis is stalled and a consumer takeover is under way ends within drainTimeoutMs, nothing thrown (Redis thawed ${thaw})`, async t => {
    const redis = await startRedis()
    t.teardown(async () => {
      redis.signal('SIGCONT')
      await redis.stop()
    })
    const drainTimeoutMs = 1500
    const takeoverWaitMs = 2500
    const config = testConfig(redis.url, {
      drainTimeoutMs,
      takeoverWaitMs,
      // Neither the watchdog nor the handshake's own bound steps in before the drain.
      redisPingIntervalMs: 60_000,
      redisRequestTimeoutMs: 20_000,
    })
    const lines: { level: number; msg: string }[] = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
    const unhandled: unknown[] = []
    const onUnhandled = (err: unknown): number => unhandled.push(err)
    process.on('unhandledRejection', onUnhandled).on('uncaughtException', onUnhandled)
    t.teardown(() => process.off('unhandledRejection', onUnhandled).off('uncaughtException', onUnhandled))
    const node = await startNode(config, logger, { gateway: 0, producer: 0 })

    // A live node holds the consumer and never answers its kick.
    const token = tokens.sign({ userId: newUserId() })
    const verified = tokens.verify(token)
    if (!verified.ok) throw new Error('the test token does not verify')
    const consumerId = consumerIdOf(verified.claims as unknown as ConsumerClaims)
    const { core } = node
    await core.presence.touchNode('ghost', 60_000)
    await core.redis.commands.set(core.keys.consumer(consumerId).node, 'ghost')
    const watcher = redis.client()
    await watcher.subscribe(core.keys.nodeChannel('ghost'))
    const kicked = new Promise(resolve => watcher.once('message', resolve))
    const handshake = ask(
      `http://127.0.0.1:${node.ports.gateway}/websocket/?EIO=4&transport=polling&token=${token}`,
    )
    await within(kicked, 5000, 'the holder to be asked to release the consumer')
    t.is(node.node.takingOver, 1)

    redis.signal('SIGSTOP')
    const started = Date.now()
    const error = await t.throwsAsync(within(node.stop(), 10_000, 'the drain to end'))
    const tookMs = Date.now() - started
    t.regex(error?.message ?? '', /^drain not done within 1500 ms \(Redis connection \w+\)$/)
    t.true(tookMs >= drainTimeoutMs && tookMs < drainTimeoutMs + 1000, `the drain ended after ${tookMs} ms`)
    t.not((await handshake).status, 200, 'the handshake is not served')

    if (thaw === 'after the drain') redis.signal('SIGCONT')
    // Past the takeover's wait: its take and release now meet a closed connection.
    await pause(takeoverWaitMs + 500)
    t.deepEqual(unhandled, [])
    t.deepEqual(
      lines.filter(line => line.msg.includes('unexpectedly')),
      [],
      'no handler threw',
    )
    t.truthy(lines.find(line => line.msg === 'node drain timed out'))
  })
}
