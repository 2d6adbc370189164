/**
 * Sessions per user per node (maxSessionsPerUser): one user's further
 * consumers are refused with 429 on both transports and both published
 * clients; a consumer that reconnects is never refused for its own session;
 * a session that ends (closed, timed out, replaced) or a handshake the node
 * refuses after all frees its place at once.
 */
import test from 'ava'
import pino from 'pino'
import { Tokens } from '../../src/auth/token.js'
import { scrape } from '../../src/metrics/index.js'
import { sample } from '../admin/harness.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { refusedUpgrade, request } from '../helpers/engineio-harness.js'
import { eventually } from '../helpers/eventually.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])
/** The n-th consumer of a user: each token its own exp, so its own consumer id (a tab, a device). */
const EXP = Math.floor(Date.now() / 1000) + 3600 // once: a token signed again is the same consumer
const tokenOf = (userId: string, n: number): string => tokens.sign({ userId, exp: EXP + n })

const REFUSED_BODY = '{"code":3,"message":"Too many sessions for this user","retryAfterMs":5000}'
const LOG_LINE = 'consumer handshake refused: too many sessions for this user'

test('past maxSessionsPerUser: 429 on polling and websocket, both published clients fail to open; other users and a reconnect pass; counted and logged', async t => {
  const lines: { msg: string; userId?: string; token?: unknown }[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const broker = await startBroker(t, server.url, { maxSessionsPerUser: 2 }, logger)
  const port = broker.ports.gateway
  const polling = (token: string) =>
    request(`http://127.0.0.1:${port}/websocket/?EIO=4&transport=polling&token=${token}`)
  const user = newUserId()
  const first = connectConsumer('v3 default', port, tokenOf(user, 1)) // snapper-consumer
  const second = connectConsumer('v4 websocket', port, tokenOf(user, 2)) // engine.io-client 6
  t.teardown(() => [first, second].forEach(consumer => consumer.close()))
  await Promise.all([first.opened(), second.opened()])

  const refused = await polling(tokenOf(user, 3))
  t.is(refused.status, 429)
  t.is(refused.text, REFUSED_BODY)
  t.is(refused.headers['retry-after'], '5')
  const upgrade = await refusedUpgrade(
    `ws://127.0.0.1:${port}/websocket/?EIO=4&transport=websocket&token=${tokenOf(user, 3)}`,
  )
  t.deepEqual([upgrade.status, upgrade.body], [429, 'Too many sessions for this user'])
  for (const kind of ['v3 default', 'v4 default', 'v4 websocket'] as const) {
    const third = connectConsumer(kind, port, tokenOf(user, 3))
    t.teardown(() => third.close())
    await t.throwsAsync(third.opened(), undefined, `${kind}: refused`)
  }

  // Another user has places of its own.
  t.is((await polling(tokenOf(newUserId(), 1))).status, 200)
  // The first consumer reconnects (same token) while its session is still open: it replaces it.
  const again = new RawConsumer(port, tokenOf(user, 1))
  t.teardown(() => again.socket.close())
  await again.opened()
  t.is((await polling(tokenOf(user, 4))).status, 429, 'still two consumers: the replaced one let go')
  t.is(broker.gateway.engine.sessions.size, 3)
  // Its new session ends: both of its sessions let go, and a new consumer fits.
  again.socket.close()
  await eventually(() => broker.gateway.engine.sessions.size === 2, { what: 'the close seen' })
  t.is((await polling(tokenOf(user, 4))).status, 200)

  t.is(sample((await scrape(broker.registry)).body, 'snapper_consumer_handshakes_user_limited_total'), 6)
  const logged = lines.filter(line => line.msg === LOG_LINE)
  t.true(logged.length > 0 && logged.every(line => line.userId === user))
  t.false(JSON.stringify(lines).includes(tokenOf(user, 3).split('.')[2]!), 'no token in the log')
})

test("a session's place is free once it ends: closed by its client, a polling session timed out, a handshake the full node refused", async t => {
  const broker = await startBroker(t, server.url, {
    maxSessionsPerUser: 1,
    maxSessions: 2,
    pingIntervalMs: 200,
    pingTimeoutMs: 200,
  })
  const port = broker.ports.gateway
  const sessions = broker.gateway.engine.sessions
  const polling = async (token: string) =>
    (await request(`http://127.0.0.1:${port}/websocket/?EIO=4&transport=polling&token=${token}`)).status
  const user = newUserId()

  // A websocket session closed by its client.
  const tab = connectConsumer('v4 websocket', port, tokenOf(user, 1))
  await tab.opened()
  t.is(await polling(tokenOf(user, 2)), 429)
  tab.close()
  await eventually(() => sessions.size === 0, { what: 'the close seen' })
  // A polling session that never polls again: counted until it times out (pingInterval + pingTimeout).
  t.is(await polling(tokenOf(user, 2)), 200)
  t.is(await polling(tokenOf(user, 3)), 429)
  await eventually(() => sessions.size === 0, { what: 'the polling session timed out' })
  t.is(await polling(tokenOf(user, 3)), 200)
  await eventually(() => sessions.size === 0, { what: 'that one timed out too' })

  // The node is full (two other users): the handshake the user's hook accepted is refused with 503 after all.
  const others = [newUserId(), newUserId()].map(other => new RawConsumer(port, tokenOf(other, 1)))
  t.teardown(() => others.forEach(other => other.socket.close()))
  await Promise.all(others.map(other => other.opened()))
  t.is(await polling(tokenOf(user, 4)), 503)
  others[0]!.socket.close()
  await eventually(() => sessions.size === 1, { what: 'a place on the node' })
  t.is(await polling(tokenOf(user, 5)), 200, 'the refused handshake held no place')
})

test('maxSessionsPerUser 0: no limit', async t => {
  const broker = await startBroker(t, server.url, { maxSessionsPerUser: 0 })
  const user = newUserId()
  const consumers = Array.from(
    { length: 5 },
    (_, n) => new RawConsumer(broker.ports.gateway, tokenOf(user, n)),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.socket.close()))
  await Promise.all(consumers.map(consumer => consumer.opened()))
  t.is(broker.gateway.engine.sessions.size, 5)
})

test("one user's consumers share one input budget on a node: a new token, or a reconnect, brings no fresh one; another user's is its own", async t => {
  // 400 bytes a second: an emptied budget takes 10 s to fill up again.
  const broker = await startBroker(t, server.url, { consumerMaxInputBytesPerSec: 400, maxPayloadBytes: 4000 })
  const port = broker.ports.gateway
  const userId = newUserId()
  const echo = (text: string) => JSON.stringify({ jsonrpc: '2.0', id: 'e', method: 'echo', params: [text] })
  const request = echo('x'.repeat(1840)) // about 1,900 bytes: two fit in the 4,000 a budget holds at once
  const open = async (token: string): Promise<RawConsumer> => {
    const consumer = new RawConsumer(port, token)
    t.teardown(() => consumer.socket.terminate())
    await consumer.opened()
    return consumer
  }
  for (const n of [1, 2]) {
    const consumer = await open(tokenOf(userId, n))
    consumer.sendText(request)
    await consumer.until(() => consumer.frames.length === 1)
  }
  const third = await open(tokenOf(userId, 1)) // the first token again: a reconnect
  third.sendText(request)
  await third.until(() => third.closed)
  t.deepEqual(third.frames, [], 'closed unread')
  t.is(broker.gateway.engine.inputLimited, 1)

  const stranger = await open(tokenOf(newUserId(), 1))
  stranger.sendText(request)
  await stranger.until(() => stranger.frames.length === 1)
  t.false(stranger.closed)
})

test('past maxHandshakesPerUserPerSec: 429 before any Redis work, reconnects of one token included; other users pass, and the next second the user; counted and logged', async t => {
  const lines: { msg: string; userId?: string }[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const broker = await startBroker(t, server.url, { maxHandshakesPerUserPerSec: 2 }, logger)
  const port = broker.ports.gateway
  const polling = (token: string) =>
    request(`http://127.0.0.1:${port}/websocket/?EIO=4&transport=polling&token=${token}`)
  const user = newUserId()
  // The same token again and again, as a reconnect loop sends it: each would be a take in Redis.
  const token = tokenOf(user, 1)
  const answers = [await polling(token), await polling(token), await polling(token)]
  t.deepEqual(
    answers.map(answer => answer.status),
    [200, 200, 429],
  )
  t.is(answers[2]!.text, '{"code":3,"message":"Too many handshakes for this user","retryAfterMs":5000}')
  t.is(answers[2]!.headers['retry-after'], '5')
  t.is((await polling(tokenOf(newUserId(), 1))).status, 200, 'another user has its own allowance')
  t.is(broker.gateway.counters.userRateLimited, 1)
  t.is(sample((await scrape(broker.registry)).body, 'snapper_consumer_handshakes_user_rate_limited_total'), 1)
  t.like(
    lines.filter(line => line.msg === 'consumer handshake refused: too many handshakes for this user'),
    [{ userId: user }],
  )
  // The next second opens a new allowance.
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.is((await polling(token)).status, 200)
})
