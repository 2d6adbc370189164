import { gzipSync } from 'node:zlib'
import test from 'ava'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, errorBody, startAdminApp, TOKENS, USER } from './harness.js'
import { eventually } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const UNAUTHORIZED = (reason: string) => errorBody(401, 'Unauthorized', 'UNAUTHORIZED', { reason })
const WRONG_ROLE = (reason: string) => errorBody(400, 'Token not allowed here', 'WRONG_ROLE', { reason })
const INVALID_PARAMS = errorBody(-32602, 'Invalid params', 'INVALID_PARAMS')

test('publish one {room, message}: 1, once it is in the room log', async t => {
  const h = await startAdminApp(t, server.url)
  const answer = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    body: { room: 'r', message: 'hello' },
  })
  t.is(answer.status, 200)
  t.deepEqual(answer.json, { result: 1 })
  t.regex(answer.headers.get('content-type') ?? '', /^application\/json/)
  t.deepEqual(await h.roomLog('r'), ['hello'])
})

test('publish a batch: invalid items are skipped, the rest lands in the room log in order', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { maxMessageBytes: 16 } })
  const items = [
    { room: 'a', message: '1' },
    { room: 'b', message: 'x' },
    { room: 'a', message: 2 },
    { room: '', message: 'empty room' },
    { room: 'a', message: '' },
    { room: 'a', message: 'y'.repeat(17) },
    'not an object',
    null,
    ['a', 'pair form is TCP only'],
    { room: 'a', message: '3' },
    { room: 'a', message: '4', extra: true },
  ]
  const answer = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, body: items })
  t.deepEqual(answer.json, { result: 4 })
  t.deepEqual(await h.roomLog('a'), ['1', '3', '4'])
  t.deepEqual(await h.roomLog('b'), ['x'])
})

test('publishes one after another keep their order in the room log', async t => {
  const h = await startAdminApp(t, server.url)
  for (let i = 0; i < 20; i++) {
    const answer = await call(`${h.base}/v1/publish`, {
      token: TOKENS.producer,
      body: [{ room: 'seq', message: `m${i}` }],
    })
    t.deepEqual(answer.json, { result: 1 })
  }
  t.deepEqual(
    await h.roomLog('seq'),
    Array.from({ length: 20 }, (_, i) => `m${i}`),
  )
})

test('all invalid, an empty array or an empty body: 0, nothing stored', async t => {
  const h = await startAdminApp(t, server.url)
  for (const body of [[{ room: 1, message: 'x' }], [], {}]) {
    const answer = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, body })
    t.is(answer.status, 200)
    t.deepEqual(answer.json, { result: 0 }, JSON.stringify(body))
  }
  const empty = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, raw: '' })
  t.deepEqual(empty.json, { result: 0 })
})

test('an operator token (name: snapper) may publish too', async t => {
  const h = await startAdminApp(t, server.url)
  const answer = await call(`${h.base}/v1/publish`, {
    token: TOKENS.operator,
    body: { room: 'r', message: 'm' },
  })
  t.deepEqual(answer.json, { result: 1 })
})

test('the body is read as JSON whatever its Content-Type', async t => {
  const h = await startAdminApp(t, server.url)
  const answer = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    raw: JSON.stringify({ room: 'r', message: 'plain' }),
    headers: { 'content-type': 'text/plain' },
  })
  t.deepEqual(answer.json, { result: 1 })
  t.deepEqual(await h.roomLog('r'), ['plain'])
})

test('tokens: none, a wrong secret or expired: 401; a consumer token, even claiming name "snapper": 400; nothing stored', async t => {
  const h = await startAdminApp(t, server.url)
  const publish = (token?: string, headers: Record<string, string> = {}) =>
    call(`${h.base}/v1/publish`, { token, body: { room: 'r', message: 'm' }, headers })

  const none = await publish()
  t.is(none.status, 401)
  t.deepEqual(none.json, UNAUTHORIZED('Authorization: Bearer <producer token> is required'))
  t.deepEqual((await publish(undefined, { authorization: `Basic ${TOKENS.producer}` })).json, none.json)

  const wrong = await publish(TOKENS.wrongSecret)
  t.is(wrong.status, 401)
  t.deepEqual(wrong.json, UNAUTHORIZED('Error: Invalid signature'))

  const expired = await publish(TOKENS.expired)
  t.is(expired.status, 401)
  t.regex((expired.json as { error: { data: { reason: string } } }).error.data.reason, /^Error: Expired: /)

  for (const token of [TOKENS.consumer, TOKENS.consumerWithId, TOKENS.operatorWithUserId]) {
    const consumer = await publish(token)
    t.is(consumer.status, 400)
    t.deepEqual(
      consumer.json,
      WRONG_ROLE('Error: Consumer token: a token with userId cannot act as a producer'),
    )
  }

  const refusedElsewhere = [
    await call(`${h.base}/v1/rooms/r/subscribe`, { token: TOKENS.consumer, body: { consumerId: 't.x' } }),
    await call(`${h.base}/v1/rooms/r/unsubscribe`, { body: { consumerId: 't.x' } }),
    await call(`${h.base}/v1/users/${USER}/consumers`, { token: TOKENS.consumer }),
  ]
  t.deepEqual(
    refusedElsewhere.map(answer => answer.status),
    [400, 401, 400],
  )
  t.deepEqual(await h.roomLog('r'), [])
})

test('the token is checked before the body is read: a stranger gets 401 (not 413), a consumer WRONG_ROLE (not a parse error)', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { adminMaxBodyBytes: 64 } })
  const big = await call(`${h.base}/v1/publish`, {
    raw: 'x'.repeat(1000),
    headers: { 'content-type': 'application/json' },
  })
  t.is(big.status, 401)
  const bad = await call(`${h.base}/v1/publish`, { token: TOKENS.consumer, raw: '{not json' })
  t.is(bad.status, 400)
  t.is((bad.json as { error: { data: { code: string } } }).error.data.code, 'WRONG_ROLE')
})

test('a body of 150,000 tiny items (adminMaxBodyBytes raised to 8 MB): all stored, in order', async t => {
  // More items than a call's arguments may spread: the answer was 500 INTERNAL, nothing stored.
  const n = 150_000
  const h = await startAdminApp(t, server.url, {
    overrides: { adminMaxBodyBytes: 8 << 20, roomLogMaxLen: n },
  })
  const messages = Array.from({ length: n }, (_, i) => i.toString(36))
  const answer = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    body: messages.map(message => ({ room: 'a', message })),
  })
  t.deepEqual(answer.json, { result: n })
  t.deepEqual(await h.roomLog('a'), messages)
})

test('a body over adminMaxBodyBytes: 413 FRAME_TOO_LARGE, nothing stored', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { adminMaxBodyBytes: 1024 } })
  const body = JSON.stringify({ room: 'r', message: 'y'.repeat(1100) })
  const answer = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, raw: body })
  t.is(answer.status, 413)
  t.deepEqual(answer.json, errorBody(-32600, 'Frame too large', 'FRAME_TOO_LARGE'))
  const fits = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    body: { room: 'r', message: 'y'.repeat(900) },
  })
  t.deepEqual(fits.json, { result: 1 })
  t.is((await h.roomLog('r')).length, 1)
})

test('a gzip body that inflates past adminMaxBodyBytes: 413, and the connection closes, so the next request is answered', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { adminMaxBodyBytes: 1024 } })
  // 20 MB of one message inflate from about 20 KB: the 413 comes long before the body's end.
  const bomb = gzipSync(JSON.stringify({ room: 'r', message: 'y'.repeat(20_000_000) }))
  const refused = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    raw: bomb,
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
  })
  t.is(refused.status, 413)
  t.is(refused.headers.get('connection'), 'close')
  // Without the close, fetch would send this one over the same connection, whose unread body
  // holds it: no answer, then a reset seconds later.
  const started = Date.now()
  const next = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    body: { room: 'r', message: 'm' },
  })
  t.deepEqual(next.json, { result: 1 })
  t.true(Date.now() - started < 2000)
  t.deepEqual(await h.roomLog('r'), ['m'])
})

test('a "__proto__" key: 400 INVALID_PARAMS saying so, nothing stored', async t => {
  const h = await startAdminApp(t, server.url)
  const answer = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    raw: '{"room":"r","message":"m","__proto__":{"isAdmin":true}}',
  })
  t.is(answer.status, 400)
  t.deepEqual(
    answer.json,
    errorBody(-32602, 'Invalid params', 'INVALID_PARAMS', { reason: 'a "__proto__" key is not allowed' }),
  )
  t.deepEqual(await h.roomLog('r'), [])
})

test('malformed JSON, or JSON that is not an object or array: 400 PARSE_ERROR', async t => {
  const h = await startAdminApp(t, server.url)
  for (const raw of ['{not json', '[{"room":"r","message":"m"}', '"a string"', '42']) {
    const answer = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, raw })
    t.is(answer.status, 400, raw)
    t.deepEqual(answer.json, errorBody(-32700, 'Parse error', 'PARSE_ERROR'), raw)
  }
  const subscribe = await call(`${h.base}/v1/rooms/r/subscribe`, {
    token: TOKENS.producer,
    raw: '{"consumerId":',
  })
  t.is(subscribe.status, 400)
  t.deepEqual(subscribe.json, errorBody(-32700, 'Parse error', 'PARSE_ERROR'))
  t.deepEqual(await h.roomLog('r'), [])
})

test('subscribe and unsubscribe: 1 then 0; rooms with / go URL-encoded', async t => {
  const h = await startAdminApp(t, server.url)
  const room = encodeURIComponent('projects/1')
  const at = (action: string) => `${h.base}/v1/rooms/${room}/${action}`
  const body = { consumerId: 't.VaB_Le4Gxnjh' }
  t.deepEqual((await call(at('subscribe'), { token: TOKENS.producer, body })).json, { result: 1 })
  t.deepEqual((await call(at('subscribe'), { token: TOKENS.producer, body })).json, { result: 0 })
  const members = await h.core.redis.commands.hgetall(h.core.keys.consumer(body.consumerId).rooms)
  t.deepEqual(Object.keys(members), ['projects/1'])
  t.deepEqual((await call(at('unsubscribe'), { token: TOKENS.producer, body })).json, { result: 1 })
  t.deepEqual((await call(at('unsubscribe'), { token: TOKENS.producer, body })).json, { result: 0 })
})

test('subscribe past maxRoomsPerConsumer: 409 CONSUMER_ROOMS_FULL, and the consumer keeps its rooms', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { maxRoomsPerConsumer: 1 } })
  const body = { consumerId: 't.VaB_Le4Gxnjh' }
  const at = (room: string) => `${h.base}/v1/rooms/${room}/subscribe`
  t.deepEqual((await call(at('a'), { token: TOKENS.producer, body })).json, { result: 1 })
  const refused = await call(at('b'), { token: TOKENS.producer, body })
  t.is(refused.status, 409)
  t.deepEqual(
    refused.json,
    errorBody(-32009, 'Consumer is in too many rooms', 'CONSUMER_ROOMS_FULL', {
      reason: 'the consumer is in 1 rooms (maxRoomsPerConsumer): leave one first',
    }),
  )
  const members = await h.core.redis.commands.hgetall(h.core.keys.consumer(body.consumerId).rooms)
  t.deepEqual(Object.keys(members), ['a'])
})

test('subscribe and unsubscribe with wrong types: 400 INVALID_PARAMS', async t => {
  const h = await startAdminApp(t, server.url)
  const long = 'r'.repeat(h.config.maxRoomBytes + 1)
  const cases: [string, unknown][] = [
    ['/v1/rooms/r/subscribe', { consumerId: 123 }],
    ['/v1/rooms/r/subscribe', { consumerId: '' }],
    ['/v1/rooms/r/subscribe', {}],
    ['/v1/rooms/r/subscribe', ['t.abc']],
    ['/v1/rooms/r/unsubscribe', { consumerId: null }],
    [`/v1/rooms/${long}/subscribe`, { consumerId: 't.abc' }],
    ['/v1/rooms/r/subscribe', { consumerId: 'c'.repeat(h.config.maxRoomBytes + 1) }],
  ]
  for (const [path, body] of cases) {
    const answer = await call(`${h.base}${path}`, { token: TOKENS.producer, body })
    t.is(answer.status, 400, `${path.slice(0, 40)} ${JSON.stringify(body).slice(0, 40)}`)
    t.deepEqual(answer.json, INVALID_PARAMS)
  }
  const noBody = await call(`${h.base}/v1/rooms/r/subscribe`, { method: 'POST', token: TOKENS.producer })
  t.deepEqual(noBody.json, INVALID_PARAMS)
})

test('a path whose %-escape does not decode: 400 INVALID_PARAMS saying so, nothing done; %25 is a "%"', async t => {
  const h = await startAdminApp(t, server.url)
  const body = { consumerId: 't.VaB_Le4Gxnjh' }
  const malformed = errorBody(-32602, 'Invalid params', 'INVALID_PARAMS', {
    reason: 'the path has a malformed %-escape',
  })
  for (const path of ['/v1/rooms/a%E0%A4/subscribe', '/v1/rooms/50%/subscribe', '/v1/users/%zz/consumers']) {
    const answer = await call(`${h.base}${path}`, {
      token: TOKENS.producer,
      ...(path.endsWith('subscribe') && { body }),
    })
    t.is(answer.status, 400, path)
    t.deepEqual(answer.json, malformed, path)
  }
  const members = () => h.core.redis.commands.hgetall(h.core.keys.consumer(body.consumerId).rooms)
  t.deepEqual(await members(), {})
  const escaped = await call(`${h.base}/v1/rooms/50%25/subscribe`, { token: TOKENS.producer, body })
  t.deepEqual(escaped.json, { result: 1 })
  t.deepEqual(Object.keys(await members()), ['50%'])
})

test('consumers: the live connections of a user by platform, in the original key order', async t => {
  const h = await startAdminApp(t, server.url)
  const empty = await call(`${h.base}/v1/users/${USER}/consumers`, { token: TOKENS.producer })
  t.is(empty.text, '{"result":{"length":0,"android":0,"ios":0,"web":0}}')
  const nodeId = 'node-a'
  await h.core.presence.touchNode(nodeId, 10_000)
  for (const id of ['a.one', 'i.two', 'w.three', 't.four'])
    await h.core.redis.commands.hset(h.core.keys.presence(USER), id, nodeId)
  const counted = await call(`${h.base}/v1/users/${USER}/consumers`, { token: TOKENS.producer })
  t.is(counted.text, '{"result":{"length":4,"android":1,"ios":1,"web":2}}')
  const long = await call(`${h.base}/v1/users/${'u'.repeat(h.config.maxRoomBytes + 1)}/consumers`, {
    token: TOKENS.producer,
  })
  t.is(long.status, 400)
  t.deepEqual(long.json, INVALID_PARAMS)
})

test('unknown paths: 404 in the same shape', async t => {
  const h = await startAdminApp(t, server.url)
  for (const [method, path] of [
    ['GET', '/nope'],
    ['POST', '/nope'],
    ['GET', '/v1/nope'],
    ['DELETE', '/v1/rooms/r'],
  ] as const) {
    const answer = await call(`${h.base}${path}`, { method, token: TOKENS.producer })
    t.is(answer.status, 404, `${method} ${path}`)
    t.deepEqual(answer.json, errorBody(-32601, 'Method not found', 'METHOD_NOT_FOUND'))
    t.is(answer.headers.get('allow'), null)
  }
})

test('a known path with a method it does not take: 405, its methods in Allow, the error shape; nothing done', async t => {
  const h = await startAdminApp(t, server.url)
  for (const [method, path, allow] of [
    ['GET', '/v1/publish', 'POST'],
    ['PUT', '/v1/publish', 'POST'],
    ['DELETE', '/v1/rooms/r/subscribe', 'POST'],
    ['POST', '/healthz', 'HEAD, GET'],
    ['POST', '/metrics', 'HEAD, GET'],
    ['DELETE', '/v1/receipts/abc', 'HEAD, GET'],
    ['OPTIONS', '/stats', 'HEAD, GET'],
    ['POST', '/dashboard/series', 'HEAD, GET'],
  ] as const)
    // Routing comes before the token check, as for a 404: the route table is public (README).
    for (const token of [TOKENS.producer, TOKENS.operator, 'garbage', undefined]) {
      const answer = await call(`${h.base}${path}`, { method, token })
      const what = `${method} ${path}, token ${token?.slice(0, 8)}`
      t.is(answer.status, 405, what)
      t.is(answer.headers.get('allow'), allow, what)
      t.deepEqual(answer.json, errorBody(-32601, 'Method not allowed', 'METHOD_NOT_ALLOWED'), what)
    }
  const head = await call(`${h.base}/v1/publish`, { method: 'HEAD', token: TOKENS.producer })
  t.is(head.status, 405)
  t.is(head.headers.get('allow'), 'POST')
  t.deepEqual(await h.roomLog('r'), [])
})

test('Redis down: 503 STORE_UNAVAILABLE at once (temporary, Retry-After), nothing queued; served again once Redis is back', async t => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const h = await startAdminApp(t, own.url)
  t.deepEqual(
    (await call(`${h.base}/v1/publish`, { token: TOKENS.producer, body: { room: 'r', message: 'before' } }))
      .json,
    {
      result: 1,
    },
  )
  await own.kill()
  // The admin app refuses once ioredis has seen the connection close; before that a command would be sent.
  await eventually(async () => h.core.redis.commands.status !== 'ready')
  const expected = errorBody(-32003, 'Storage unavailable, retry', 'STORE_UNAVAILABLE', { temporary: true })
  const requests = [
    call(`${h.base}/v1/publish`, { token: TOKENS.producer, body: { room: 'r', message: 'during' } }),
    call(`${h.base}/v1/rooms/r/subscribe`, { token: TOKENS.producer, body: { consumerId: 't.x' } }),
    call(`${h.base}/v1/rooms/r/unsubscribe`, { token: TOKENS.producer, body: { consumerId: 't.x' } }),
    call(`${h.base}/v1/users/${USER}/consumers`, { token: TOKENS.producer }),
    call(`${h.base}/stats`, { token: TOKENS.operator }),
  ]
  for (const answer of await Promise.all(requests)) {
    t.is(answer.status, 503)
    t.deepEqual(answer.json, expected)
    t.is(answer.headers.get('retry-after'), '1')
  }
  await own.restart()
  const answer = await eventually(
    async () => {
      const answer = await call(`${h.base}/v1/publish`, {
        token: TOKENS.producer,
        body: { room: 'r', message: 'after' },
      })
      return answer.status !== 503 && answer
    },
    { what: 'a publish to be served again', everyMs: 50 },
  )
  t.deepEqual(answer.json, { result: 1 })
  t.deepEqual(await h.roomLog('r'), ['after'], 'a fresh server: "during" was never sent')
})
