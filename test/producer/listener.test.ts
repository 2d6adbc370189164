import test from 'ava'
import { pino } from 'pino'
import { consumerIdOf } from '../../src/auth/token.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { AUTH_FRAME, AUTH_OK, call, frame, startListener } from './setup.js'
import { eventually, eventWithin } from '../helpers/eventually.js'

let server: RedisServer

test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const USER = '55a07f2dee06c78e1357b0ad'

test('a wrong secret: error 401, then close, and no reconnect', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer({ secret: 'another secret', wait: false })
  const [error] = (await eventWithin(producer, 'error')) as [{ code: number; message: string; data: string }]
  t.is(error.code, 401)
  t.is(error.message, 'Unauthorized')
  t.is(error.data, 'Error: Invalid signature')
  await eventWithin(producer, 'close')
  t.true(producer.conn.closed, 'the client destroyed itself: it will not reconnect')
  t.is(h.listener.stats.accepted, 1)
  t.is(h.listener.stats.errors.UNAUTHORIZED, 1)
})

test('refused tokens are logged at most logMaxRefusalsPerSec a second; the rest are counted in one line', async t => {
  const lines: { msg: string; reason?: string; skipped?: number }[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const h = await startListener(t, server, { logMaxRefusalsPerSec: 3 }, logger)
  const closed: Promise<unknown>[] = []
  for (let i = 0; i < 12; i++) {
    const stranger = await h.producer({ secret: 'another secret', wait: false })
    stranger.on('error', () => {}) // the 401, asserted below from the listener's side
    closed.push(new Promise(resolve => stranger.once('close', resolve)))
  }
  await Promise.all(closed)
  t.is(h.listener.stats.errors.UNAUTHORIZED, 12)
  const refused = (): typeof lines => lines.filter(line => line.msg === 'producer refused')
  const counted = (): typeof lines =>
    lines.filter(line => line.msg === 'producer refused (more in one second)')
  // Within one second (12 local handshakes take milliseconds): 3 lines, then one that counts 9.
  await eventually(() => counted().length > 0, { timeoutMs: 3000 })
  t.is(refused().length, 3)
  t.true(refused().every(line => line.reason === 'Error: Invalid signature'))
  t.deepEqual(
    counted().map(line => line.skipped),
    [9],
  )
})

test('the right secret: connect; signAuth tokens verify with Tokens', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  t.true(producer.conn.connected)
  const token = producer.signAuth({ userId: USER, source: 'ios' })
  const verified = h.tokens.verifyConsumer(token)
  if (!verified.ok) return t.fail(verified.reason)
  t.is(verified.claims.userId, USER)
  t.regex(consumerIdOf(verified.claims), /^i\./)
  t.is(h.listener.connections, 1)
})

test('joinRoom: 1, then null when already a member; leaveRoom: 1, then null', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  t.is(await call(producer.joinRoom('projects/1', 't.VaB_Le4Gxnjh')), 1)
  t.is(await call(producer.joinRoom('projects/1', 't.VaB_Le4Gxnjh')), null)
  t.is(await call(producer.leaveRoom('projects/1', 't.VaB_Le4Gxnjh')), 1)
  t.is(await call(producer.leaveRoom('projects/1', 't.VaB_Le4Gxnjh')), null)
})

test('joinRoom and leaveRoom refuse bad params with Invalid params', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  for (const [room, id] of [
    [123, 't.abc'],
    ['room', 123],
    ['room', ''],
    ['', 't.abc'],
    ['x'.repeat(2000), 't.abc'],
    [null, undefined],
  ] as const) {
    t.like(await refusal(call(producer.joinRoom(room, id))), { message: 'Invalid params', code: -32602 })
    t.like(await refusal(call(producer.leaveRoom(room, id))), { message: 'Invalid params' })
  }
  t.like(await refusal(call(producer.request('subscribe', {}))), { message: 'Invalid params' })
  t.like(await refusal(call(producer.request('subscribe'))), { message: 'Invalid params' })
  t.is(h.listener.stats.errors.INVALID_PARAMS, 14)
})

test("request('get', 123) fails in the client; request('get', []) is Method not found", async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  const framesBefore = h.listener.stats.frames
  t.like(await refusal(call(producer.request('get', 123))), { message: 'Invalid params', code: -32602 })
  t.like(await refusal(call(producer.request('get', []))), { message: 'Method not found', code: -32601 })
  t.is(h.listener.stats.frames, framesBefore + 1, 'the first one never reached the wire')
})

test('consumers of an unknown user: all zeros, in the original key order', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  const counts = await call(producer.request('consumers', [USER]))
  t.deepEqual(counts, { length: 0, android: 0, ios: 0, web: 0 })
  t.deepEqual(Object.keys(counts as object), ['length', 'android', 'ios', 'web'])
  t.like(await refusal(call(producer.request('consumers', []))), { message: 'Invalid params' })
})

test('echo returns params, or null without them', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  t.deepEqual(await call(producer.request('echo', [1, 'two', { three: 3 }])), [1, 'two', { three: 3 }])
  t.deepEqual(await call(producer.request('echo', {})), {})
  t.is(await call(producer.request('echo')), null)
})

test('publish as a request: the count of accepted pairs, null for none', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  const batch = [
    ['room1', 'm1'],
    ['room2', 'm2'],
    ['room3', 3],
    ['', 'x'],
  ]
  t.is(await call(producer.request('publish', batch)), 2)
  t.is(await call(producer.request('publish', ['room1', 'flat form'])), 1)
  t.is(await call(producer.request('publish', [[1, 2]])), null)
  t.is(await call(producer.request('publish', {})), null)
  t.is(await call(producer.request('publish', [])), null)
  t.deepEqual(await h.roomLog('room1'), [
    { seq: 1, message: 'm1' },
    { seq: 2, message: 'flat form' },
  ])
  t.deepEqual(await h.roomLog('room3'), [])
})

test('1,000 messages via sendMessage land in the room log in order, with contiguous seqs', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  for (let i = 0; i < 1000; i++) producer.sendMessage('big', `{"e":"m","d":${i}}`)
  // A publish request behind them is answered once stored; Redis runs one connection's commands in order.
  t.is(await call(producer.request('publish', [['fence', 'after the 1000']])), 1)
  const log = await h.roomLog('big')
  t.deepEqual(
    log.map(entry => entry.seq),
    Array.from({ length: 1000 }, (_, i) => i + 1),
  )
  t.deepEqual(
    log.map(entry => entry.message),
    Array.from({ length: 1000 }, (_, i) => `{"e":"m","d":${i}}`),
  )
})

test('UTF-8 messages are stored unchanged', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  producer.sendMessage('ré', '任务😀\u2028')
  t.is(await call(producer.request('publish', [['ré', 'ü']])), 1)
  t.deepEqual(await h.roomLog('ré'), [
    { seq: 1, message: '任务😀\u2028' },
    { seq: 2, message: 'ü' },
  ])
})

test('messages and requests queued before connecting are all served after the auth', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer({ wait: false })
  const connected = eventWithin(producer, 'connect')
  // Queued before TCP connects. The client sends the requests right behind its auth frame and the
  // messages at its next drain, so the order between the two kinds is the client's, not ours.
  producer.sendMessage('early', 'e1')
  const echo = call(producer.request('echo', ['early']))
  producer.sendMessage('early', 'e2')
  producer.sendMessage('early', 'e3')
  const published = call(producer.request('publish', [['early-request', 'r1']]))
  t.deepEqual(await echo, ['early'])
  t.is(await published, 1)
  await connected
  t.is(await call(producer.request('publish', [['fence', 'x']])), 1)
  t.deepEqual(
    (await h.roomLog('early')).map(entry => entry.message),
    ['e1', 'e2', 'e3'],
  )
})

test('frames pipelined behind auth in one chunk are served after it, in order (raw bytes)', async t => {
  const h = await startListener(t, server)
  const client = await h.raw()
  client.send(
    AUTH_FRAME +
      frame('{"jsonrpc":"2.0","method":"publish","params":[["r","early1"]]}') +
      frame('{"jsonrpc":"2.0","id":"k9fs:2","method":"echo","params":["early"]}') +
      frame('{"jsonrpc":"2.0","id":"k9fs:3","method":"publish","params":[["r","early2"]]}'),
  )
  t.is(await client.expect(AUTH_OK), AUTH_OK)
  const echoed = frame('{"jsonrpc":"2.0","id":"k9fs:2","result":["early"]}')
  t.is(await client.expect(echoed), echoed)
  const counted = frame('{"jsonrpc":"2.0","id":"k9fs:3","result":1}')
  t.is(await client.expect(counted), counted)
  t.deepEqual(await h.roomLog('r'), [
    { seq: 1, message: 'early1' },
    { seq: 2, message: 'early2' },
  ])
})

test('a reconnect (listener closed and reopened on the same port) resumes publishing', async t => {
  const h = await startListener(t, server)
  const producer = await h.producer()
  producer.on('error', () => {}) // the reset while reconnecting is reported; not what this test is about
  t.is(await call(producer.request('publish', [['again', 'before']])), 1)

  await h.listener.close()
  t.is(h.listener.connections, 0)
  const reconnected = eventWithin(producer, 'connect')
  t.is(await h.listener.listen(h.port, '127.0.0.1'), h.port)
  await reconnected

  producer.sendMessage('again', 'after')
  t.is(await call(producer.request('publish', [['again', 'after 2']])), 1)
  t.deepEqual(
    (await h.roomLog('again')).map(entry => entry.message),
    ['before', 'after', 'after 2'],
  )
  t.is(h.listener.stats.accepted, 2)
})

test('close() answers every request already received, stores its publishes, then ends the socket', async t => {
  const h = await startListener(t, server)
  const client = await h.rawAuthed()
  const requests = Array.from({ length: 50 }, (_, i) =>
    frame(`{"jsonrpc":"2.0","id":"c:${i}","method":"publish","params":[["drain","m${i}"]]}`),
  )
  client.send(requests.join(''))
  await eventually(() => h.listener.stats.frames >= 51, { what: 'the server to read every frame' })
  await h.listener.close()
  let answered = ''
  for (let i = 0; i < 50; i++)
    answered += await client.expect(frame(`{"jsonrpc":"2.0","id":"c:${i}","result":1}`))
  t.is(
    answered,
    Array.from({ length: 50 }, (_, i) => frame(`{"jsonrpc":"2.0","id":"c:${i}","result":1}`)).join(''),
  )
  t.is(await client.ended(), '')
  t.is((await h.roomLog('drain')).length, 50)
})

/** What a client request was refused with (toa-net rejects with JsonRpcError, which ava does not take for an Error). */
function refusal(request: Promise<unknown>): Promise<unknown> {
  return request.then(
    result => {
      throw new Error(`expected a refusal, got ${JSON.stringify(result)}`)
    },
    (err: unknown) => err,
  )
}
