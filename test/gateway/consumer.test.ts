/**
 * The consumer gateway on the wire, with a whole node on a real Redis:
 * handshake refusals before any upgrade, the snapper.ws cookie, the consumer's
 * JSON-RPC (ack, invalid), the rooms one consumer may be in, a session replaced by the same token, a slow
 * consumer closed without slowing anyone, and an ack that never comes.
 */
import { Agent, request as httpRequest } from 'node:http'
import test from 'ava'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'
import { assertBounded, captureLog } from '../helpers/log-lines.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])
const NOT_A_CONSUMER = 'Error: Not a consumer token: userId (24 lowercase hex digits) is required'

test('refusals come before any upgrade, with the Engine.IO status and code', async t => {
  const { ports } = await startBroker(t, server.url)
  const base = `http://127.0.0.1:${ports.gateway}/websocket/`
  const user = newUserId()
  const cases: [token: string, eio: string, status: number, body: Record<string, unknown>][] = [
    [
      'garbage',
      '3',
      403,
      { code: 4, message: 'Error: Malformed token: not a compact JWS (header.payload.signature)' },
    ],
    [
      new Tokens(['unknown secret']).sign({ userId: user }),
      '4',
      403,
      { code: 4, message: 'Error: Invalid signature' },
    ],
    [tokens.sign({ name: 'snapper' }), '3', 403, { code: 4, message: NOT_A_CONSUMER }],
    [tokens.sign({ userId: 'not-hex' }), '4', 403, { code: 4, message: NOT_A_CONSUMER }],
    [tokens.sign({ userId: user }), '5', 400, { code: 5, message: 'Unsupported protocol version' }],
  ]
  for (const [token, eio, status, body] of cases) {
    const response = await fetch(`${base}?EIO=${eio}&transport=polling&token=${token}`)
    t.is(response.status, status)
    t.deepEqual(await response.json(), body)
  }
  const expired = await fetch(`${base}?EIO=4&transport=polling&token=${tokens.sign({ userId: user }, -5)}`)
  t.is(expired.status, 403)
  t.regex(((await expired.json()) as { message: string }).message, /^Error: Expired: /)

  for (const token of ['garbage', tokens.sign({ name: 'snapper' })]) {
    const socket = new WebSocket(
      `ws://127.0.0.1:${ports.gateway}/websocket/?EIO=4&transport=websocket&token=${token}`,
    )
    const status = await new Promise<number>((resolve, reject) => {
      socket.once('unexpected-response', (_, response) => resolve(response.statusCode ?? 0))
      socket.once('open', () => reject(new Error('upgraded with a bad token')))
      socket.once('error', () => {})
    })
    t.is(status, 400, 'refused before 101')
  }
})

test('refused handshakes are logged at info at most logMaxRefusalsPerSec a second, per kind; the rest counted in one line; never the token', async t => {
  const lines: { level: number; msg: string; reason?: string; codec?: string; skipped?: number }[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const { ports } = await startBroker(t, server.url, { logMaxRefusalsPerSec: 5 }, logger)
  const base = `http://127.0.0.1:${ports.gateway}/websocket/?EIO=4&transport=polling`
  const badToken = new Tokens(['unknown secret']).sign({ userId: newUserId() })
  const goodToken = tokens.sign({ userId: newUserId() })
  // At once: 50 local handshakes take well under a second, so most fall in one window.
  const statuses = await Promise.all([
    ...Array.from({ length: 50 }, () => fetch(`${base}&token=${badToken}`).then(answer => answer.status)),
    ...Array.from({ length: 8 }, () =>
      fetch(`${base}&codec=yaml&token=${goodToken}`).then(answer => answer.status),
    ),
  ])
  t.deepEqual([...new Set(statuses)].sort(), [400, 403])

  const tally = (msg: string): { lines: typeof lines; counted: number; countLines: number } => {
    const said = lines.filter(line => line.msg === msg)
    const counts = lines.filter(line => line.msg === `${msg} (more in one second)`)
    return {
      lines: said,
      counted: said.length + counts.reduce((sum, line) => sum + line.skipped!, 0),
      countLines: counts.length,
    }
  }
  const tokenRefusals = await eventually(
    () => {
      const refused = tally('consumer handshake refused')
      return refused.counted === 50 && refused
    },
    { what: 'every token refusal said or counted', timeoutMs: 5000 },
  )
  t.true(tokenRefusals.countLines >= 1)
  t.true(
    tokenRefusals.lines.length <= 5 * (tokenRefusals.countLines + 1),
    `${tokenRefusals.lines.length} lines`,
  )
  t.like(tokenRefusals.lines[0], { level: 30, reason: 'Error: Invalid signature' })
  const codecRefusals = await eventually(
    () => {
      const refused = tally('consumer handshake refused: unknown codec')
      return refused.counted === 8 && refused
    },
    { what: 'every codec refusal said or counted', timeoutMs: 5000 },
  )
  t.true(codecRefusals.lines.length <= 5 * (codecRefusals.countLines + 1))
  t.like(codecRefusals.lines[0], { level: 30, codec: 'yaml' })
  const logged = JSON.stringify(lines)
  t.false(logged.includes(badToken) || logged.includes(goodToken), 'no token in the log')
})

test('the polling handshake sets the snapper.ws cookie; a new token from the same browser weakens the old consumer', async t => {
  const broker = await startBroker(t, server.url)
  const userId = newUserId()
  const oldToken = tokens.sign({ userId }, 3600)
  const oldId = consumerIdOf({ userId, exp: Math.floor(Date.now() / 1000) + 3600 })
  const first = await fetch(
    `http://127.0.0.1:${broker.ports.gateway}/websocket/?EIO=3&transport=polling&token=${oldToken}`,
  )
  t.is(
    first.headers.get('set-cookie'),
    `snapper.ws=${encodeURIComponent(oldId)}; Path=/; HttpOnly; SameSite=Lax`,
  )
  t.true((await first.text()).includes(`"sid":"${oldId}"`))
  const redis = server.client()
  const oldRooms = broker.core.keys.consumer(oldId).rooms
  t.true((await redis.ttl(oldRooms)) > 300)

  const newToken = tokens.sign({ userId }, 7200)
  const second = await fetch(
    `http://127.0.0.1:${broker.ports.gateway}/websocket/?EIO=3&transport=polling&token=${newToken}`,
    {
      headers: { cookie: `other=1; snapper.ws=${oldId}` },
    },
  )
  t.is(second.status, 200)
  await eventually(async () => {
    const ttl = await redis.ttl(oldRooms)
    return ttl > 0 && ttl <= 300
  })
  t.pass()
})

test('HEAD gets the status and headers of the answer without its body, so the next answer on the connection is read right', async t => {
  const { ports } = await startBroker(t, server.url)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const ask = (method: string, path: string) =>
    new Promise<{ status: number; length: string | undefined; body: string }>((resolve, reject) => {
      const request = httpRequest({ host: '127.0.0.1', port: ports.gateway, method, path, agent }, res => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (body += chunk))
        res.on('end', () => resolve({ status: res.statusCode!, length: res.headers['content-length'], body }))
      })
      request.on('error', reject)
      request.end()
    })
  const engine = '/websocket/?EIO=4&transport=polling'
  const refused = await ask('GET', engine.replace('polling', 'nothing'))
  const headRefused = await ask('HEAD', engine)
  t.like(headRefused, { status: 400, body: '' })
  const missing = await ask('GET', '/nothing')
  const headMissing = await ask('HEAD', '/nothing')
  t.like(headMissing, { status: 404, length: '0', body: '' })
  // The same connection (one socket in the agent): each answer read as sent.
  t.like(await ask('GET', engine.replace('polling', 'nothing')), { status: 400, body: refused.body })
  t.like(await ask('GET', '/nothing'), { status: 404, body: missing.body })
})

test("/stats total.rooms counts distinct rooms joined, each consumer's own room included, as the original did", async t => {
  const broker = await startBroker(t, server.url)
  const producer = await connectProducer(t, broker.ports.producer)
  const [alice, bob] = [newUserId(), newUserId()]
  const claims = [alice, alice, bob].map((userId, i) => ({
    userId,
    exp: Math.floor(Date.now() / 1000) + 3600 + i,
  }))
  const consumers = claims.map(claim => new RawConsumer(broker.ports.gateway, tokens.sign(claim)))
  t.teardown(() => consumers.forEach(consumer => consumer.socket.close()))
  await Promise.all(consumers.map(consumer => consumer.opened()))
  for (const claim of claims) await call(producer.joinRoom('crowd', consumerIdOf(claim)))
  await call(producer.request('publish', ['unjoined', 'm']))
  const response = await fetch(
    `http://127.0.0.1:${broker.ports.gateway}/stats?token=${tokens.signOperator()}`,
  )
  const body = (await response.json()) as { stats: { total: { rooms: number; consumers: number } } }
  t.like(body.stats.total, { rooms: 3, consumers: 3 }, "alice's room, bob's room, crowd")
})

test('a consumer in maxRoomsPerConsumer rooms (its own included) is refused a further one with CONSUMER_ROOMS_FULL and gets nothing of it; after a leave it may join', async t => {
  const broker = await startBroker(t, server.url, { maxRoomsPerConsumer: 3 })
  const producer = await connectProducer(t, broker.ports.producer)
  const claim = { userId: newUserId(), exp: Math.floor(Date.now() / 1000) + 3600 }
  const consumerId = consumerIdOf(claim)
  const consumer = new RawConsumer(broker.ports.gateway, tokens.sign(claim))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  t.is(await call(producer.joinRoom('a', consumerId)), 1)
  t.is(await call(producer.joinRoom('b', consumerId)), 1)
  const refused = await call(producer.joinRoom('c', consumerId)).then(
    () => t.fail('joined a fourth room'),
    (err: unknown) => err,
  )
  t.like(refused, {
    code: -32009,
    message: 'Consumer is in too many rooms',
    data: {
      code: 'CONSUMER_ROOMS_FULL',
      reason: 'the consumer is in 3 rooms (maxRoomsPerConsumer): leave one first',
    },
  })
  t.is(await call(producer.joinRoom('a', consumerId)), null, 'a room it is in is no new room')
  await call(
    producer.request('publish', [
      ['c', 'not for it'],
      ['a', 'one'],
    ]),
  )
  t.deepEqual(await receiveAll(consumer, 1), ['one'])

  t.is(await call(producer.leaveRoom('b', consumerId)), 1)
  t.is(await call(producer.joinRoom('c', consumerId)), 1)
  await call(producer.request('publish', [['c', 'two']]))
  await consumer.until(() => consumer.batches.length === 2)
  t.deepEqual(consumer.batches[1]!.params, ['two'], "nothing of c's from before its join")
})

test('gateway /stats takes the operator token as Authorization: Bearer too, as the admin /stats does', async t => {
  const broker = await startBroker(t, server.url)
  const url = `http://127.0.0.1:${broker.ports.gateway}/stats`
  const bearer = await fetch(url, { headers: { authorization: `Bearer ${tokens.signOperator()}` } })
  t.is(bearer.status, 200)
  t.like(await bearer.json(), { server: 'snapper' })
  const producerToken = await fetch(url, { headers: { authorization: `Bearer ${tokens.sign({ id: 'p' })}` } })
  t.is(producerToken.status, 400, 'a valid token of another role: 400, as with ?token=')
  t.is((await fetch(url)).status, 401)
  // A repeated ?token= is refused, as on the admin /stats, whichever of them is valid.
  for (const query of [`token=${tokens.signOperator()}&token=x`, `token=x&token=${tokens.signOperator()}`]) {
    const twice = await fetch(`${url}?${query}`)
    t.is(twice.status, 401, query)
    t.like(
      await twice.json(),
      { error: { data: { reason: 'Error: ?token= given 2 times: give one token' } } },
      query,
    )
  }
})

test('gateway /stats while Redis is stopped: 503 STORE_UNAVAILABLE with Retry-After, `stats unavailable` logged at most logMaxFailuresPerSec a second, the rest counted', async t => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const { logger, lines } = captureLog()
  const broker = await startBroker(
    t,
    own.url,
    { logMaxFailuresPerSec: 2, redisRequestTimeoutMs: 300, drainTimeoutMs: 500 },
    logger,
  )
  own.signal('SIGSTOP')
  t.teardown(() => own.signal('SIGCONT'))
  const total = 30
  const url = `http://127.0.0.1:${broker.ports.gateway}/stats?token=${tokens.signOperator()}`
  const answers = await Promise.all(
    Array.from({ length: total }, async () => {
      const response = await fetch(url)
      const { error } = (await response.json()) as { error: { message: string } }
      return `${response.status} ${error.message}, Retry-After ${response.headers.get('retry-after')}`
    }),
  )
  t.deepEqual(new Set(answers), new Set(['503 Storage unavailable, retry, Retry-After 1']))
  await assertBounded(t, lines, 'stats unavailable', { total, perSecond: 2, level: 'warn' })
})

test("a snapper.ws cookie naming another user's consumer is ignored: that consumer keeps its life", async t => {
  const broker = await startBroker(t, server.url)
  const base = `http://127.0.0.1:${broker.ports.gateway}/websocket/?EIO=3&transport=polling`
  const victim = { userId: newUserId(), exp: Math.floor(Date.now() / 1000) + 3600 }
  t.is((await fetch(`${base}&token=${tokens.sign(victim)}`)).status, 200)
  const victimRooms = broker.core.keys.consumer(consumerIdOf(victim)).rooms
  const redis = server.client()
  t.true((await redis.ttl(victimRooms)) > 300)

  // Same redis connection as the weakening would use: once the handshake is answered, it would have run.
  const attack = await fetch(`${base}&token=${tokens.sign({ userId: newUserId() })}`, {
    headers: { cookie: `snapper.ws=${consumerIdOf(victim)}` },
  })
  t.is(attack.status, 200)
  t.true((await redis.ttl(victimRooms)) > 300, "the victim's consumer is not cut short")
})

test('an unexpected response gets the original invalid notification; a request is echoed', async t => {
  const { ports } = await startBroker(t, server.url)
  const consumer = new RawConsumer(ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  consumer.send({ jsonrpc: '2.0', id: 'zzz', result: 'OK' })
  consumer.send({ jsonrpc: '2.0', id: 'r:1', method: 'echo', params: [1, 2, 3] })
  await consumer.until(() => consumer.frames.length === 2)
  t.deepEqual(consumer.frames, [
    {
      jsonrpc: '2.0',
      method: 'invalid',
      params: [{ payload: { jsonrpc: '2.0', id: 'zzz', result: 'OK' }, type: 'success' }],
    },
    { jsonrpc: '2.0', id: 'r:1', result: [1, 2, 3] },
  ] as never)
})

test('a message nested too deeply to echo gets an invalid notice without the echo; the session goes on', async t => {
  const { ports } = await startBroker(t, server.url)
  const consumer = new RawConsumer(ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  const deep = '['.repeat(5000) + ']'.repeat(5000) // JSON.stringify overflows the stack on it
  for (const text of [
    `{"jsonrpc":"2.0","id":"zzz","result":${deep}}`,
    `{"jsonrpc":"2.0","id":"r:0","method":"echo","params":${deep}}`,
    `{"jsonrpc":"2.0","id":"zzz","error":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`,
  ])
    consumer.sendText(text)
  consumer.send({ jsonrpc: '2.0', id: 'r:1', method: 'echo', params: [1] })
  await consumer.until(() => consumer.frames.length === 4)
  const notice = (type: string): unknown => ({
    jsonrpc: '2.0',
    method: 'invalid',
    params: [{ payload: { message: 'Nested too deeply', code: -32600 }, type }],
  })
  t.deepEqual(consumer.frames, [
    notice('success'),
    notice('invalid'),
    notice('error'),
    { jsonrpc: '2.0', id: 'r:1', result: [1] },
  ] as never)
  t.false(consumer.closed)
})

test('a session replaced by the same token gets the batch in flight again, under the same id', async t => {
  const broker = await startBroker(t, server.url)
  const producer = await connectProducer(t, broker.ports.producer)
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const first = new RawConsumer(broker.ports.gateway, token)
  await first.opened()
  producer.sendMessage(`user${userId}`, 'a').sendMessage(`user${userId}`, 'b')
  await first.until(() => first.batches.length === 1)
  const inflight = first.batches[0]!

  const second = new RawConsumer(broker.ports.gateway, token)
  t.teardown(() => second.socket.close())
  await second.opened()
  await first.until(() => first.closed)
  await second.until(() => second.batches.length === 1)
  t.deepEqual(second.batches[0], inflight)
  producer.sendMessage(`user${userId}`, 'c')
  t.deepEqual(
    await receiveAll(second, 3),
    ['a', 'b', 'c'],
    'nothing lost, nothing twice beyond the resent batch',
  )
  t.is(broker.gateway.engine.sessions.size, 1)
})

test('a consumer that does not acknowledge is closed after ackTimeoutMs; on reconnect it gets that batch again, same id', async t => {
  const broker = await startBroker(t, server.url, { ackTimeoutMs: 500 })
  const producer = await connectProducer(t, broker.ports.producer)
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const silent = new RawConsumer(broker.ports.gateway, token)
  await silent.opened()
  producer.sendMessage(`user${userId}`, 'x')
  await silent.until(() => silent.batches.length === 1)
  await silent.until(() => silent.closed, 5000)
  t.is(broker.node.counters.ackTimeouts, 1)
  await eventually(() => broker.node.online === 0)

  const again = new RawConsumer(broker.ports.gateway, token)
  t.teardown(() => again.socket.close())
  await again.opened()
  await again.until(() => again.batches.length === 1)
  t.deepEqual(again.batches[0], silent.batches[0])
})

test('a consumer that stops reading never slows the others; the heartbeat closes it and its messages wait in Redis', async t => {
  const broker = await startBroker(t, server.url, { pingIntervalMs: 300, pingTimeoutMs: 300 })
  const producer = await connectProducer(t, broker.ports.producer)
  const [slowToken, fastToken] = [tokens.sign({ userId: newUserId() }), tokens.sign({ userId: newUserId() })]
  const slow = new RawConsumer(broker.ports.gateway, slowToken)
  const fast = new RawConsumer(broker.ports.gateway, fastToken)
  t.teardown(() => fast.socket.close())
  await Promise.all([slow.opened(), fast.opened()])
  const slowId = consumerIdOf(claimsOf(slowToken))
  await call(producer.joinRoom('busy', slowId))
  await call(producer.joinRoom('busy', consumerIdOf(claimsOf(fastToken))))

  ;(slow.socket as unknown as { _socket: { pause(): void } })._socket.pause()
  const messages = Array.from({ length: 2000 }, (_, i) => `${i}:${'x'.repeat(1000)}`)
  await broker.core.producerApi.publish(messages.map(message => ['busy', message] as const))
  t.deepEqual(
    await receiveAll(fast, messages.length),
    messages,
    'the other consumer gets everything meanwhile',
  )
  t.true(broker.node.backlog() <= broker.config.consumerMaxQueue, 'what waits in memory is bounded')
  await eventually(() => !broker.gateway.engine.sessions.has(slowId), { timeoutMs: 5000 })

  slow.socket.terminate()
  const back = new RawConsumer(broker.ports.gateway, slowToken)
  t.teardown(() => back.socket.close())
  await back.opened()
  t.deepEqual(
    await receiveAll(back, messages.length),
    messages,
    'after reconnecting, everything from Redis, in order',
  )
})

test('a consumer whose buffered replies pass the backpressure limit is closed', async t => {
  const broker = await startBroker(t, server.url, {
    consumerMaxBackpressureBytes: 256 * 1024,
    batchMaxBytes: 64 * 1024,
  })
  const flooder = new RawConsumer(broker.ports.gateway, tokens.sign({ userId: newUserId() }))
  const calm = new RawConsumer(broker.ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => calm.socket.close())
  await Promise.all([flooder.opened(), calm.opened()])
  // Asks for 40 MB of echoes without reading any: the kernel's buffers fill, then the broker's.
  ;(flooder.socket as unknown as { _socket: { pause(): void } })._socket.pause()
  const params = ['y'.repeat(4000)]
  for (let i = 0; i < 10_000; i++) flooder.send({ jsonrpc: '2.0', id: i + 1, method: 'echo', params })
  await eventually(() => broker.gateway.engine.sessions.size === 1, { timeoutMs: 20_000 })
  t.deepEqual(await calm.request('still here'), ['still here'])
  flooder.socket.terminate()
})

/** Acks every batch as it comes until `count` messages arrived; returns them. */
async function receiveAll(consumer: RawConsumer, count: number): Promise<string[]> {
  const received: string[] = []
  let acked = 0
  await consumer.until(() => {
    while (acked < consumer.batches.length) {
      const batch = consumer.batches[acked++]!
      received.push(...batch.params)
      consumer.ack(batch.id)
    }
    return received.length >= count
  }, 20_000)
  return received
}

function claimsOf(token: string): { userId: string; exp: number } {
  const verified = tokens.verifyConsumer(token)
  if (!verified.ok) throw new Error('test token does not verify')
  return verified.claims
}

test('a session answers only requests that carry its own token: a guessed sid is an unknown sid', async t => {
  const { ports } = await startBroker(t, server.url)
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const base = `http://127.0.0.1:${ports.gateway}/websocket/?EIO=4&transport=polling`
  const handshake = await fetch(`${base}&token=${token}`)
  const sid = (JSON.parse((await handshake.text()).slice(1)) as { sid: string }).sid
  t.is(sid, consumerIdOf(claimsOf(token)))

  const otherToken = tokens.sign({ userId: newUserId() })
  for (const query of [`&sid=${sid}`, `&sid=${sid}&token=${otherToken}`]) {
    const poll = await fetch(`${base}${query}`)
    t.is(poll.status, 400)
    t.deepEqual(await poll.json(), { code: 1, message: 'Session ID unknown' })
    const post = await fetch(`${base}${query}`, { method: 'POST', body: '1' })
    t.is(post.status, 400)
  }
  const probe = new WebSocket(
    `ws://127.0.0.1:${ports.gateway}/websocket/?EIO=4&transport=websocket&sid=${sid}&token=${otherToken}`,
  )
  const status = await new Promise<number>((resolve, reject) => {
    probe.once('unexpected-response', (_, response) => resolve(response.statusCode ?? 0))
    probe.once('open', () => reject(new Error('a foreign token upgraded the session')))
    probe.once('error', () => {})
  })
  t.is(status, 400)

  const own = await fetch(`${base}&sid=${sid}&token=${token}`, { method: 'POST', body: '1' })
  t.is(own.status, 200, 'the session itself is untouched: its own close goes through')
})
