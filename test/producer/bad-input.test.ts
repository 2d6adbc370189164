/**
 * Bad input on the wire, from raw sockets: the exact reply bytes, whether
 * the socket stays open, and that another producer connected at the same
 * time never notices. Tests that pause Redis (CLIENT PAUSE) are serial: ava
 * runs them before the concurrent ones, so no other test shares the pause.
 */
import test, { type ExecutionContext } from 'ava'
import jwt from 'jsonwebtoken'
import { isFramingError, RespDecoder } from '../../src/producer/resp.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import {
  AUTH_FRAME,
  AUTH_OK,
  call,
  error,
  frame,
  notification,
  RawClient,
  request,
  SECRET,
  startListener,
  type Harness,
} from './setup.js'
import { docVectors, wireText } from '../helpers/doc-vectors.js'
import { eventually } from '../helpers/eventually.js'

let server: RedisServer

test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const BAD_FRAMING = error(null, 'Bad framing', -32700, { code: 'BAD_FRAMING' })
/** An already-connected snapper-producer still gets answers: the bad client affected only itself. */
async function assertWitnessServed(
  t: ExecutionContext,
  witness: Awaited<ReturnType<Harness['producer']>>,
): Promise<void> {
  t.deepEqual(
    await call(witness.request('echo', ['still here'])),
    ['still here'],
    'the other producer is unaffected',
  )
}

/** After authenticating, `input` is answered with exactly `reply`; the socket stays open or is ended. */
const afterAuth = test.macro(async (t, input: string | Buffer, reply: string, staysOpen: boolean) => {
  const h = await startListener(t, server)
  const witness = await h.producer()
  const client = await h.rawAuthed()
  client.send(input)
  t.is(await client.expect(reply), reply)
  if (staysOpen) t.truthy(await client.echo('after:1'), 'the same socket is still served')
  else t.is(await client.ended(), '', 'the server ended the socket after its reply')
  await assertWitnessServed(t, witness)
})

// docs/producer-protocol.md §6: a title, what the client sends, the answer, whether the socket is kept.
for (const [title, input, reply, after] of docVectors('producer-protocol', 'bad-input'))
  test(String(title), afterAuth, wireText(input), wireText(reply), after === 'kept')
test(
  'deep JSON (100 000 levels): Invalid request, no crash',
  afterAuth,
  frame(`{"jsonrpc":"2.0","id":"x:5","method":"echo","params":${'['.repeat(100_000)}${']'.repeat(100_000)}}`),
  error('x:5', 'Invalid request', -32600),
  true,
)

test('a 900 KB echo (under the limit) comes back whole', async t => {
  const h = await startListener(t, server)
  const client = await h.rawAuthed()
  const big = 'é'.repeat(450_000)
  client.send(request('big:1', 'echo', [big]))
  const reply = frame(JSON.stringify({ jsonrpc: '2.0', id: 'big:1', result: [big] }))
  t.is(await client.expect(reply), reply)
})

test('unknown-method notifications, publish without params and a late auth notification are ignored; the socket is kept', async t => {
  const h = await startListener(t, server)
  const client = await h.rawAuthed()
  client.send(
    notification('nope', [1]) +
      notification('publish') +
      notification('auth', ['x']) +
      notification('echo', [1]),
  )
  // The echo's reply is the first thing to arrive: nothing was answered before it.
  t.truthy(await client.echo('after:1'))
  t.is(h.listener.stats.ignored, 3)
  t.is(client.buffered, 0)
})

test('a socket cut mid-frame disturbs nobody', async t => {
  const h = await startListener(t, server)
  const witness = await h.producer()
  const client = await h.rawAuthed()
  client.send('$100\r\n{"jsonrpc":"2.0","id":"cut')
  await eventually(() => h.listener.stats.frames >= 2, { what: 'the witness auth and the raw auth' })
  client.socket.destroy()
  await eventually(() => h.listener.connections === 1, { what: 'the cut connection to go' })
  await assertWitnessServed(t, witness)
  t.is(h.listener.stats.pending, 0)
})

test('a client FIN after its requests: they are still answered, then the server ends too', async t => {
  const h = await startListener(t, server)
  const client = await h.rawAuthed()
  client.socket.end(request('fin:1', 'publish', [['fin', 'm1']]) + request('fin:2', 'echo', ['bye']))
  const replies =
    frame('{"jsonrpc":"2.0","id":"fin:1","result":1}') +
    frame('{"jsonrpc":"2.0","id":"fin:2","result":["bye"]}')
  t.is(await client.expect(replies), replies)
  t.is(await client.ended(), '')
  t.deepEqual(await h.roomLog('fin'), [{ seq: 1, message: 'm1' }])
})

test('a Redis error surfaces as STORE_UNAVAILABLE (temporary); the socket is kept', async t => {
  const h = await startListener(t, server)
  const witness = await h.producer()
  const client = await h.rawAuthed()
  await h.redis.set(h.keys.room('broken').log, 'not a stream') // every append to this room now fails in Redis
  client.send(request('s:1', 'publish', [['broken', 'm']]) + notification('publish', [['broken', 'm']]))
  const reply = error('s:1', 'Storage unavailable, retry', -32003, {
    code: 'STORE_UNAVAILABLE',
    temporary: true,
  })
  t.is(await client.expect(reply), reply)
  t.truthy(await client.echo('after:1'))
  await eventually(() => h.listener.stats.errors.STORE_UNAVAILABLE === 2, {
    what: 'the notification to fail too',
  })
  await assertWitnessServed(t, witness)
})

// The handshake.

/** Before authenticating, `input` is answered with exactly `reply` and the socket is ended. */
const refusedAuth = test.macro(async (t, input: string, reply: string) => {
  const h = await startListener(t, server)
  const witness = await h.producer()
  const client = await h.raw()
  client.send(input)
  t.is(await client.expect(reply), reply)
  t.is(await client.ended(), '', 'FIN right after the 401; frames behind it dropped')
  await assertWitnessServed(t, witness)
  t.is(h.listener.stats.errors.UNAUTHORIZED, 1)
})

const authWith = (token: unknown, id = 'a:1'): string => request(id, 'auth', [token])
const unauthorized = (id: string | null, reason: string): string => error(id, 'Unauthorized', 401, reason)

test(
  'a token signed with another secret (the $108 bytes of docs/producer-protocol.md §4)',
  refusedAuth,
  authWith(jwt.sign({ exp: 4102444800, id: 'p' }, 'another secret', { noTimestamp: true })),
  '$108\r\n{"jsonrpc":"2.0","id":"a:1","error":{"message":"Unauthorized","code":401,"data":"Error: Invalid signature"}}\r\n',
)
test(
  'an expired token',
  refusedAuth,
  authWith(jwt.sign({ exp: 1000, id: 'p' }, SECRET, { noTimestamp: true })),
  unauthorized('a:1', `Error: Expired: ${new Date(1000 * 1000).toString()}`),
)
test(
  'a token without exp',
  refusedAuth,
  authWith(jwt.sign({ id: 'p' }, SECRET, { noTimestamp: true })),
  unauthorized('a:1', 'Error: No expiry: the token has no exp claim'),
)
test(
  'garbage for a token',
  refusedAuth,
  authWith('not.a.token'),
  unauthorized('a:1', 'Error: Malformed token: the header is not a JSON object'),
)
test(
  'a token whose payload is not JSON (it used to throw out of the data handler and end the process)',
  refusedAuth,
  authWith('e30.eA.'),
  unauthorized('a:1', 'Error: Malformed token: not a compact JWS (header.payload.signature)'),
)
test(
  "a consumer token (it carries userId): a browser's token cannot publish",
  refusedAuth,
  authWith(jwt.sign({ exp: 4102444800, userId: '55a07f2dee06c78e1357b0ad' }, SECRET)),
  unauthorized('a:1', 'Error: Consumer token: a token with userId cannot act as a producer'),
)
test(
  'auth with object params',
  refusedAuth,
  request('a:1', 'auth', {}),
  unauthorized('a:1', 'Error: Token required'),
)
test(
  'a first frame that is another method: 401 with its id',
  refusedAuth,
  request('a:1', 'echo', []),
  unauthorized('a:1', 'Error: Auth request expected'),
)
test(
  'auth sent as a notification: 401 with id null',
  refusedAuth,
  notification('auth', ['token']),
  unauthorized(null, 'Error: Auth request expected'),
)
test(
  'a first frame of invalid JSON: 401 with id null',
  refusedAuth,
  frame('{nope'),
  unauthorized(null, 'Error: Auth request expected'),
)

test('frames then FIN without auth: refused, never served', async t => {
  const h = await startListener(t, server)
  const client = await h.raw()
  client.socket.end(request('n:1', 'publish', [['sneaky', 'm']]) + request('n:2', 'echo', ['x']))
  const reply = unauthorized('n:1', 'Error: Auth request expected')
  t.is(await client.expect(reply), reply)
  t.is(await client.ended(), '')
  t.deepEqual(await h.roomLog('sneaky'), [])
})

test('auth, a request, then FIN in one write: all served, then the server ends', async t => {
  const h = await startListener(t, server)
  const client = await h.raw()
  client.socket.end(AUTH_FRAME + request('f:2', 'publish', [['quick', 'm']]))
  const replies = AUTH_OK + frame('{"jsonrpc":"2.0","id":"f:2","result":1}')
  t.is(await client.expect(replies), replies)
  t.is(await client.ended(), '')
  t.deepEqual(await h.roomLog('quick'), [{ seq: 1, message: 'm' }])
})

test('close() with a socket not yet authenticated: SHUTTING_DOWN with id null (the client reconnects), then FIN', async t => {
  const h = await startListener(t, server)
  const client = await h.raw()
  client.send(AUTH_FRAME.slice(0, 20))
  await eventually(() => h.listener.stats.bufferedBytes > 0, { what: 'the partial auth to be read' })
  await h.listener.close()
  const reply = error(null, 'Shutting down, retry elsewhere', -32004, {
    code: 'SHUTTING_DOWN',
    temporary: true,
  })
  t.is(await client.expect(reply), reply)
  t.is(await client.ended(), '')
})

test('frames behind a failed auth are dropped, even a publish in the same chunk', async t => {
  const h = await startListener(t, server)
  const client = await h.raw()
  const badAuth = authWith(jwt.sign({ exp: 4102444800 }, 'another secret', { noTimestamp: true }))
  client.send(
    badAuth + notification('publish', [['dropped', 'm']]) + request('d:2', 'publish', [['dropped', 'm2']]),
  )
  const reply = unauthorized('a:1', 'Error: Invalid signature')
  t.is(await client.expect(reply), reply)
  t.is(await client.ended(), '')
  t.is(h.listener.stats.frames, 1)
  t.deepEqual(await h.roomLog('dropped'), [])
})

test('a framing error before auth is answered as such and closes', async t => {
  const h = await startListener(t, server)
  const client = await h.raw()
  client.send('GET / HTTP/1.1\r\n\r\n')
  t.is(await client.expect(BAD_FRAMING), BAD_FRAMING)
  t.is(await client.ended(), '')
})

test('auth timeout: an unauthenticated socket is answered 401 and closed; an authenticated one is never closed for idleness', async t => {
  const h = await startListener(t, server, { producerAuthTimeoutMs: 1000 }) // ample: a loaded machine must not time out the socket that does authenticate
  const authed = await h.rawAuthed()
  const silent = await h.raw()
  const half = await h.raw()
  half.send(AUTH_FRAME.slice(0, 40)) // half an auth frame, then nothing
  const reply = unauthorized(null, 'Error: Authentication timeout')
  t.is(await silent.expect(reply), reply)
  t.is(await silent.ended(), '')
  t.is(await half.expect(reply), reply)
  t.is(await half.ended(), '')
  // Well past the timeout, the authenticated socket is still served.
  t.false(authed.isEnded)
  t.truthy(await authed.echo('idle:1'))
  t.is(h.listener.stats.errors.UNAUTHORIZED, 2)
})

// Backpressure and the publish contract, against a paused Redis.

test.serial(
  'a publish request is answered only once its messages are in Redis; later replies wait for it',
  async t => {
    const h = await startListener(t, server)
    const client = await h.rawAuthed()
    await h.redis.call('CLIENT', 'PAUSE', '10000', 'WRITE') // scripts that write now wait
    t.teardown(() => h.redis.call('CLIENT', 'UNPAUSE'))
    client.send(
      request('p:1', 'publish', [
        ['stored', 'm1'],
        ['stored', 'm2'],
      ]) + request('p:2', 'echo', ['behind']),
    )
    await eventually(() => h.listener.stats.frames === 3 && h.listener.stats.pending === 2, {
      what: 'both requests to be read',
    })
    await new Promise(resolve => setImmediate(resolve))
    t.is(client.buffered, 0, 'no reply while Redis cannot store, not even the finished echo')
    await h.redis.call('CLIENT', 'UNPAUSE')
    const reply = frame('{"jsonrpc":"2.0","id":"p:1","result":2}')
    t.is(await client.expect(reply), reply)
    // The log was read after the reply: the reply came once the data was there.
    t.deepEqual(await h.roomLog('stored'), [
      { seq: 1, message: 'm1' },
      { seq: 2, message: 'm2' },
    ])
    const echoed = frame('{"jsonrpc":"2.0","id":"p:2","result":["behind"]}')
    t.is(await client.expect(echoed), echoed)
  },
)

test.serial(
  'producerMaxPending: reading pauses at the limit and resumes below it; order is kept',
  async t => {
    const h = await startListener(t, server, { producerMaxPending: 8 })
    const witness = await h.producer()
    const client = await h.rawAuthed()
    await h.redis.call('CLIENT', 'PAUSE', '10000', 'WRITE')
    t.teardown(() => h.redis.call('CLIENT', 'UNPAUSE'))
    const framesBefore = h.listener.stats.frames
    let requests = ''
    for (let i = 0; i < 100; i++) requests += request(`q:${i}`, 'publish', [['limited', `m${i}`]])
    client.send(requests)
    await eventually(() => h.listener.stats.paused === 1, { what: 'reading to pause' })
    t.is(h.listener.stats.pending, 8, 'exactly the limit in flight')
    t.is(h.listener.stats.frames - framesBefore, 8, 'nothing read beyond it')
    await h.redis.call('CLIENT', 'UNPAUSE')
    let expected = ''
    for (let i = 0; i < 100; i++) expected += frame(`{"jsonrpc":"2.0","id":"q:${i}","result":1}`)
    t.is(await client.expect(expected), expected)
    t.deepEqual(
      (await h.roomLog('limited')).map(entry => `${entry.seq}:${entry.message}`),
      Array.from({ length: 100 }, (_, i) => `${i + 1}:m${i}`),
    )
    t.is(h.listener.stats.pending, 0)
    t.is(h.listener.stats.paused, 0)
    await assertWitnessServed(t, witness)
  },
)

test.serial('close() waits for publishes in flight: stored, answered, then FIN', async t => {
  const h = await startListener(t, server)
  const client = await h.rawAuthed()
  await h.redis.call('CLIENT', 'PAUSE', '10000', 'WRITE')
  t.teardown(() => h.redis.call('CLIENT', 'UNPAUSE'))
  client.send(request('z:1', 'publish', [['closing', 'm1']]) + notification('publish', [['closing', 'm2']]))
  await eventually(() => h.listener.stats.pending === 2, { what: 'both publishes in flight' })
  let isClosed = false
  const closing = h.listener.close().then(() => (isClosed = true))
  await t.throwsAsync(RawClient.connect(h.port), { code: 'ECONNREFUSED' }, 'no longer accepting')
  t.false(isClosed, 'close() waits while Redis cannot store')
  t.is(client.buffered, 0)
  await h.redis.call('CLIENT', 'UNPAUSE')
  await closing
  const reply = frame('{"jsonrpc":"2.0","id":"z:1","result":1}')
  t.is(await client.expect(reply), reply)
  t.is(await client.ended(), '')
  t.deepEqual(
    (await h.roomLog('closing')).map(entry => entry.message),
    ['m1', 'm2'],
  )
})

test('a client that never reads: the server stops reading, memory stays bounded, and everything is answered in order later', async t => {
  const h = await startListener(t, server)
  const witness = await h.producer()
  const client = await h.rawAuthed()
  client.socket.pause() // never reads
  const count = 30_000
  const padding = 'x'.repeat(1000)
  let batch = ''
  for (let i = 0; i < count; i++) {
    batch += request(`b:${i}`, 'echo', [padding])
    if (i % 1000 === 999) {
      client.send(batch)
      batch = ''
    }
  }
  await eventually(() => h.listener.stats.paused === 1, { what: 'the server to stop reading' })
  const { frames, bufferedBytes, pending, pauses } = h.listener.stats
  t.log(`paused after ${frames} of ${count} frames, holding ${bufferedBytes} bytes, ${pending} in flight`)
  t.true(pauses >= 1)
  t.true(frames < count, `stopped reading after ${frames} frames`)
  t.true(bufferedBytes < 1 << 20, `holds ${bufferedBytes} bytes for the slow client`)
  t.true(pending <= 1024)
  await assertWitnessServed(t, witness)

  // Now read everything: every request is answered, in order.
  const decoder = new RespDecoder(1 << 20)
  let next = 0
  await new Promise<void>((resolve, reject) => {
    client.socket.removeAllListeners('data')
    client.socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk)
      for (let item = decoder.next(); item !== undefined; item = decoder.next()) {
        if (isFramingError(item)) return reject(new Error(item.detail))
        const message = JSON.parse(item.toString()) as { id: string }
        if (message.id !== `b:${next}`)
          return reject(new Error(`reply ${message.id} where b:${next} was due`))
        if (++next === count) resolve()
      }
    })
    client.socket.resume()
  })
  t.is(next, count)
  await eventually(() => h.listener.stats.pending === 0 && h.listener.stats.paused === 0, {
    what: 'the queue to empty',
  })
})
