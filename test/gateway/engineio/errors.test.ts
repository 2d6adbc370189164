import test, { type ExecutionContext } from 'ava'
import WebSocket from 'ws'
import {
  type EchoServer,
  type RawResponse,
  openSocket,
  refusedUpgrade,
  request,
  startEcho,
} from '../../helpers/engineio-harness.js'
import { TryAgainLater, type EngineOptions } from '../../../src/gateway/engineio/server.js'
import { eventually, eventWithin } from '../../helpers/eventually.js'

async function echo(t: ExecutionContext, options: Partial<EngineOptions> = {}): Promise<EchoServer> {
  const server = await startEcho(options)
  t.teardown(() => server.stop())
  return server
}

function assertError(t: ExecutionContext, res: RawResponse, status: number, body: string): void {
  t.is(res.status, status)
  t.is(res.headers['content-type'], 'application/json')
  t.is(res.text, body)
  t.is(res.headers['access-control-allow-origin'], '*', 'CORS on errors too')
}

const TRANSPORT_UNKNOWN = '{"code":0,"message":"Transport unknown"}'
const SID_UNKNOWN = '{"code":1,"message":"Session ID unknown"}'
const BAD_METHOD = '{"code":2,"message":"Bad handshake method"}'
const BAD_REQUEST = '{"code":3,"message":"Bad request"}'
const UNSUPPORTED = '{"code":5,"message":"Unsupported protocol version"}'

test('E1, E2: no or unknown transport: 400 code 0', async t => {
  const server = await echo(t)
  assertError(t, await request(server.url('EIO=4')), 400, TRANSPORT_UNKNOWN)
  assertError(t, await request(server.url('EIO=4&transport=flashsocket')), 400, TRANSPORT_UNKNOWN)
})

test('E3: unknown sid: 400 code 1', async t => {
  const server = await echo(t)
  assertError(t, await request(server.url('EIO=3&transport=polling&sid=nope')), 400, SID_UNKNOWN)
  assertError(
    t,
    await request(server.url('EIO=4&transport=polling&sid=nope'), { method: 'POST', body: '4x' }),
    400,
    SID_UNKNOWN,
  )
})

test('E4, E5: a handshake that is not a GET: 400 code 2', async t => {
  const server = await echo(t)
  const post = await request(server.url('EIO=4&transport=polling&token=good'), {
    method: 'POST',
    body: '1:6',
  })
  assertError(t, post, 400, BAD_METHOD)
  assertError(t, await request(server.url('EIO=4&transport=polling'), { method: 'PUT' }), 400, BAD_METHOD)
  assertError(t, await request(server.url('EIO=4&transport=polling'), { method: 'DELETE' }), 400, BAD_METHOD)
  t.is(server.engine.sessions.size, 0)
})

test('E6: transport=websocket without an Upgrade: 400 code 3', async t => {
  const server = await echo(t)
  assertError(t, await request(server.url('EIO=4&transport=websocket&token=good')), 400, BAD_REQUEST)
})

test('E7: a refused token: 403 with the application message, and no session', async t => {
  const server = await echo(t)
  const res = await request(server.url('EIO=4&transport=polling&token=bad'))
  assertError(t, res, 403, '{"code":4,"message":"bad token"}')
  t.is(res.headers['set-cookie'], undefined)
  t.is(server.engine.sessions.size, 0)
  t.deepEqual(server.opened, [])
})

test('E8: a revision other than 3 or 4, or none: 400 code 5', async t => {
  const server = await echo(t)
  for (const eio of ['EIO=5&', 'EIO=abc&', 'EIO=&', ''])
    assertError(t, await request(server.url(`${eio}transport=polling&token=good`)), 400, UNSUPPORTED)
  t.is(server.engine.sessions.size, 0)
})

test('E9, E10: transport or revision other than the session’s: 400 code 3', async t => {
  const server = await echo(t)
  const open = await request(server.url('EIO=3&transport=polling&token=good&id=v3'))
  t.is(open.status, 200)
  assertError(t, await request(server.url('EIO=3&transport=websocket&sid=v3')), 400, BAD_REQUEST)
  assertError(t, await request(server.url('EIO=4&transport=polling&sid=v3')), 400, BAD_REQUEST)
  t.is(server.engine.sessions.size, 1, 'the session survives requests that do not fit it')
  server.engine.sessions.get('v3')?.close()
  t.is(server.engine.sessions.size, 0)
})

test('E11, E12, E13: refused upgrades get a raw 400 text/html before any 101', async t => {
  const server = await echo(t)
  const cases: Array<[string, string]> = [
    ['EIO=4&transport=websocket&sid=nope', 'Session ID unknown'],
    ['EIO=4&transport=websocket&token=bad', 'bad token'],
    ['EIO=4&transport=nope&token=good', 'Transport unknown'],
    ['EIO=9&transport=websocket&token=good', 'Unsupported protocol version'],
    ['transport=websocket&token=good', 'Unsupported protocol version'],
    ['EIO=4&transport=polling&token=good', 'Bad request'],
    ['EIO=4&transport=websocket&token=good&j=0', 'Bad request'],
  ]
  for (const [query, message] of cases) {
    const refused = await refusedUpgrade(server.url(query, 'ws'))
    t.is(refused.status, 400, query)
    t.is(refused.body, message, query)
    t.is(refused.headers['content-type'], 'text/html', query)
    t.is(refused.headers.connection, 'close', query)
  }
  t.is(server.engine.sessions.size, 0)
  t.deepEqual(server.opened, [])
})

test('E14: /websocket without its slash, and other paths, are not Engine.IO', async t => {
  const server = await echo(t)
  for (const path of [
    '/websocket?EIO=4&transport=polling&token=good',
    '/websocketX/?EIO=4&transport=polling&token=good',
  ]) {
    const res = await request(`${server.base}${path}`)
    t.is(res.status, 404, path)
    t.is(res.text, 'not engine.io', path)
  }
  const deeper = await request(`${server.base}/websocket/deeper?EIO=4&transport=polling&token=good`)
  t.is(deeper.status, 200, 'the path matches by prefix, like engine.io')
  t.is(server.engine.sessions.size, 1)
})

test('JSONP is not supported: 400 code 3', async t => {
  const server = await echo(t)
  assertError(t, await request(server.url('EIO=3&transport=polling&token=good&j=0')), 400, BAD_REQUEST)
  t.is(server.engine.sessions.size, 0)
})

test('a method other than GET or POST on a sid: 500, empty', async t => {
  const server = await echo(t)
  await request(server.url('EIO=4&transport=polling&token=good&id=m'))
  for (const method of ['PUT', 'DELETE']) {
    const res = await request(server.url('EIO=4&transport=polling&sid=m'), { method })
    t.is(res.status, 500)
    t.is(res.text, '')
    t.is(res.headers['access-control-allow-origin'], '*')
  }
})

test('a query longer than maxQueryBytes: 400 code 3 before anything else, raw 400 on an upgrade', async t => {
  const server = await echo(t, { maxQueryBytes: 100 })
  const long = `EIO=4&transport=polling&token=good&pad=${'x'.repeat(80)}`
  assertError(t, await request(server.url(long)), 400, BAD_REQUEST)
  assertError(t, await request(server.url(`${long}&sid=nope`), { method: 'OPTIONS' }), 400, BAD_REQUEST)
  const refused = await refusedUpgrade(server.url(long.replace('polling', 'websocket'), 'ws'))
  t.deepEqual([refused.status, refused.body], [400, 'Bad request'])
  t.is((await request(server.url('EIO=4&transport=polling&token=good'))).status, 200, 'a short one passes')
})

test('past maxSessions: 503 JSON on polling, raw 503 on an upgrade; a replacement still passes', async t => {
  const server = await echo(t, { maxSessions: 1 })
  t.is((await request(server.url('EIO=4&transport=polling&token=good&id=one'))).status, 200)
  const full = await request(server.url('EIO=4&transport=polling&token=good&id=two'))
  t.is(full.status, 503)
  t.is(full.text, '{"code":3,"message":"Too many sessions"}')
  const refused = await refusedUpgrade(server.url('EIO=4&transport=websocket&token=good&id=two', 'ws'))
  t.deepEqual([refused.status, refused.body], [503, 'Too many sessions'])
  t.is(
    (await request(server.url('EIO=4&transport=polling&token=good&id=one'))).status,
    200,
    'same id replaces',
  )
  t.is(server.engine.handshakesFull, 2, 'counted for snapper_consumer_handshakes_full_total')
  t.deepEqual([...server.engine.sessions.keys()], ['one'])
  t.deepEqual(server.closed, [], 'a replaced session gets no close()')
})

test('an origin off the allow-list cannot open a session: 403 code 4, raw 400 on an upgrade', async t => {
  const server = await echo(t, { corsOrigins: ['https://ok.example'] })
  const evil = await request(server.url('EIO=4&transport=polling&token=good'), {
    headers: { origin: 'https://evil.example' },
  })
  t.is(evil.status, 403)
  t.is(evil.text, '{"code":4,"message":"Forbidden"}')
  t.is(evil.headers['access-control-allow-origin'], undefined, 'not echoed: the page cannot read it')
  t.is(evil.headers.vary, 'Origin')
  const ws = new WebSocket(server.url('EIO=4&transport=websocket&token=good', 'ws'), {
    origin: 'https://evil.example',
  })
  ws.on('error', () => {}) // the unexpected-response below is the assertion
  const [, res] = (await eventWithin(ws, 'unexpected-response')) as [unknown, { statusCode: number }]
  t.is(res.statusCode, 400)
  const ok = await request(server.url('EIO=4&transport=polling&token=good'), {
    headers: { origin: 'https://ok.example' },
  })
  t.is(ok.status, 200)
  t.is(ok.headers['access-control-allow-origin'], 'https://ok.example')
  t.is(ok.headers['access-control-allow-credentials'], 'true')
  const plain = await request(server.url('EIO=4&transport=polling&token=good'))
  t.is(plain.status, 200, 'no Origin: not a browser page, nothing to check')
  t.is(server.engine.sessions.size, 2)
})

test('CORS: the Origin echoed with credentials on every polling response; OPTIONS answered 204', async t => {
  const server = await echo(t)
  const origin = 'https://app.example'
  for (const res of [
    await request(server.url('EIO=4&transport=polling&token=good&id=c'), { headers: { origin } }),
    await request(server.url('EIO=4&transport=polling&sid=c'), {
      method: 'POST',
      body: '4x',
      headers: { origin },
    }),
    await request(server.url('EIO=4&transport=polling&sid=c'), { headers: { origin } }),
    await request(server.url('EIO=4&transport=nope'), { headers: { origin } }),
    await request(server.url('EIO=4&transport=polling&token=bad'), { headers: { origin } }),
  ]) {
    t.is(res.headers['access-control-allow-origin'], origin)
    t.is(res.headers['access-control-allow-credentials'], 'true')
    t.is(res.headers.vary, 'Origin')
  }
  const preflight = await request(server.url('EIO=4&transport=polling&sid=c'), {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type, x-a',
    },
  })
  t.is(preflight.status, 204)
  t.is(preflight.headers['access-control-allow-origin'], origin)
  t.is(preflight.headers['access-control-allow-credentials'], 'true')
  t.is(preflight.headers['access-control-allow-methods'], 'GET, POST, OPTIONS')
  t.is(preflight.headers['access-control-allow-headers'], 'content-type, x-a')
  const bare = await request(server.url('EIO=4&transport=polling'), { method: 'OPTIONS' })
  t.is(bare.status, 204)
  t.is(bare.headers['access-control-allow-origin'], '*')
  t.is(bare.headers['access-control-allow-headers'], 'Content-Type')
})

test('cookie: on the polling handshake only, not on later polls nor on the 101; null turns it off', async t => {
  const server = await echo(t)
  const open = await request(server.url('EIO=4&transport=polling&token=good&id=t.VaB_Le4Gx44TV7Ct9IZXAA~~'))
  t.deepEqual(open.headers['set-cookie'], [
    'snapper.ws=t.VaB_Le4Gx44TV7Ct9IZXAA~~; Path=/; HttpOnly; SameSite=Lax',
  ])
  const post = await request(server.url('EIO=4&transport=polling&sid=t.VaB_Le4Gx44TV7Ct9IZXAA~~'), {
    method: 'POST',
    body: '4x',
  })
  t.is(post.headers['set-cookie'], undefined)
  const ws = new WebSocket(server.url('EIO=4&transport=websocket&token=good&id=w', 'ws'))
  const [upgrade] = (await eventWithin(ws, 'upgrade')) as [{ headers: Record<string, unknown> }]
  t.is(upgrade.headers['set-cookie'], undefined)
  ws.close()
  await server.closeOf('w')

  const quiet = await echo(t, { cookieName: null })
  t.is((await request(quiet.url('EIO=4&transport=polling&token=good'))).headers['set-cookie'], undefined)
})

test('the handshake hook sees the decoded query, lower-case headers and the address', async t => {
  const server = await echo(t)
  const seen = await openSocket(
    server.url('EIO=4&transport=websocket&token=good&id=a+b%2Fc%E2%82%AC', 'ws'),
    {
      headers: { 'X-Custom': 'Yes' },
    },
  )
  t.true(
    (await seen.next()).toString().startsWith('0{"sid":"a b/c€"'),
    'URLSearchParams decoding: + is a space',
  )
  const [handshake] = server.handshakes
  t.is(handshake?.query.get('transport'), 'websocket')
  t.is(handshake?.headers['x-custom'], 'Yes')
  t.is(typeof handshake?.headers['sec-websocket-key'], 'string')
  t.is(handshake?.remoteAddress, '127.0.0.1')
  seen.ws.close()
  t.is(await server.closeOf('a b/c€'), 'transport close')
  await eventually(() => server.engine.sessions.size === 0)
})

test('a handler that throws is a bug: logged, and answered 500 or the session closed', async t => {
  const server = await startEcho(
    {},
    {
      authorize: handshake => {
        if (handshake.query.get('token') === 'boom') throw new Error('authorize bug')
        return { ok: true, id: 'h', data: { n: 0, greet: null, delayMs: undefined, isGated: false } }
      },
      message: () => {
        throw new Error('message bug')
      },
    },
  )
  t.teardown(() => server.stop())
  const refused = await request(server.url('EIO=4&transport=polling&token=boom'))
  t.is(refused.status, 500)
  t.is(refused.text, '{"code":3,"message":"Internal error"}')
  const upgrade = await refusedUpgrade(server.url('EIO=4&transport=websocket&token=boom', 'ws'))
  t.deepEqual([upgrade.status, upgrade.body], [500, 'Internal error'])
  const socket = await openSocket(server.url('EIO=4&transport=websocket&token=any', 'ws'))
  await socket.next()
  socket.ws.send('4hi')
  t.is(await socket.closed, 1005)
  t.is(await server.closeOf('h'), 'internal error')
  t.is(server.engine.sessions.size, 0)
})

test('an empty POST body is a parse error', async t => {
  const server = await echo(t)
  await request(server.url('EIO=3&transport=polling&token=good&id=e&b64=1'))
  const res = await request(server.url('EIO=3&transport=polling&sid=e'), { method: 'POST', body: '' })
  t.is(res.text, 'ok')
  t.is(await server.closeOf('e'), 'parse error')
})

test('a session that prepares first: its open packet waits, refusals do not; both transports', async t => {
  const server = await echo(t)
  const startedMs = Date.now()
  const polling = await request(server.url('EIO=4&transport=polling&token=good&id=p&delay=50&greet=hi'))
  t.true(Date.now() - startedMs >= 45, 'answered once prepared')
  t.is(polling.status, 200)
  t.regex(polling.text, /^0\{"sid":"p",.*\}\x1e4hi$/)
  t.deepEqual(polling.headers['set-cookie'], ['snapper.ws=p; Path=/; HttpOnly; SameSite=Lax'])
  // The socket is upgraded at once; the open packet comes when the session is ready.
  const socket = await openSocket(
    server.url('EIO=3&transport=websocket&token=good&id=w&delay=50&greet=hi', 'ws'),
  )
  t.false(server.engine.sessions.has('w'), 'not open while preparing')
  t.regex((await socket.next()) as string, /^0\{"sid":"w","upgrades":\[\]/)
  t.is(await socket.next(), '4hi')
  socket.ws.send('4hi')
  t.is(await socket.next(), '4echo:hi')
  const refused = await request(server.url('EIO=4&transport=polling&token=bad&delay=50'))
  t.is(refused.status, 403)
  t.is(refused.text, '{"code":4,"message":"bad token"}')
  const upgrade = await refusedUpgrade(server.url('EIO=4&transport=websocket&token=bad&delay=50', 'ws'))
  t.deepEqual([upgrade.status, upgrade.body], [400, 'bad token'])
  t.deepEqual([...server.engine.sessions.keys()].sort(), ['p', 'w'])
  t.deepEqual(server.abandoned, [])
  t.deepEqual(
    server.preparing.map(signal => signal.aborted),
    [false, false],
    'prepare() is not told of a client gone',
  )
})

test('a client gone while its session prepares: prepare() is told at once, then abandoned, no session opens', async t => {
  const server = await echo(t)
  const abort = new AbortController()
  const handled = server.handled('get')
  const polling = request(server.url('EIO=4&transport=polling&token=good&id=p&gate=1'), {
    signal: abort.signal,
  })
  await handled
  abort.abort()
  await t.throwsAsync(polling)
  const socket = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=w&gate=1', 'ws'))
  socket.ws.terminate()
  await eventually(() => server.preparing.length === 2 && server.preparing.every(signal => signal.aborted), {
    what: 'both prepare() signals to be aborted while still preparing',
  })
  t.deepEqual(server.abandoned, [], 'abandon() waits for prepare() to settle')
  server.openGate()
  await eventually(() => server.abandoned.length === 2)
  t.deepEqual(server.abandoned.map(data => data.n).sort(), [1, 2])
  t.deepEqual(server.opened, [])
  t.is(server.engine.sessions.size, 0)
})

test('sessions still preparing count against maxSessions; closing meanwhile: 503 or a closed socket, abandoned', async t => {
  const server = await echo(t, { maxSessions: 1 })
  const early = request(server.url('EIO=4&transport=polling&token=good&id=early&gate=1'))
  await eventually(() => server.handshakes.length === 1) // preparing
  const full = await request(server.url('EIO=4&transport=polling&token=good&id=second'))
  t.deepEqual([full.status, full.text], [503, '{"code":3,"message":"Too many sessions"}'])
  server.openGate()
  t.is((await early).status, 200)
  const closing = request(server.url('EIO=4&transport=polling&token=good&id=early&gate=1'))
  const socket = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=early&gate=1', 'ws'))
  await eventually(() => server.handshakes.length === 4)
  server.engine.close()
  server.openGate()
  const polling = await closing
  t.deepEqual([polling.status, polling.text], [503, '{"code":3,"message":"Shutting down"}'])
  t.is(await socket.closed, 1005, 'a plain close, no open packet')
  t.deepEqual(socket.messages, [])
  t.deepEqual(server.abandoned.map(data => data.n).sort(), [2, 3, 4]) // n counts the hook's acceptances
  t.is(server.engine.sessions.size, 0)
})

test('a rejected prepare() is a bug: 500, or the websocket closes with 1011', async t => {
  const server = await startEcho({}, { prepare: () => Promise.reject(new Error('redis down, and a bug')) })
  t.teardown(() => server.stop())
  const res = await request(server.url('EIO=4&transport=polling&token=good'))
  t.deepEqual([res.status, res.text], [500, '{"code":3,"message":"Internal error"}'])
  const socket = await openSocket(server.url('EIO=4&transport=websocket&token=good', 'ws'))
  t.is(await socket.closed, 1011)
  t.deepEqual(socket.messages, [])
  t.is(server.abandoned.length, 2)
  t.is(server.engine.sessions.size, 0)
})

test('a prepare() that rejects with TryAgainLater is no bug: its 503 with retryAfterMs, or the websocket closes with 1013', async t => {
  const refusal = { status: 503, code: 3, message: 'Storage unavailable, retry' } as const
  const server = await startEcho(
    { retryAfterMs: 1500 },
    { prepare: () => Promise.reject(new TryAgainLater(refusal, 'Redis refused the take')) },
  )
  t.teardown(() => server.stop())
  const res = await request(server.url('EIO=4&transport=polling&token=good'))
  t.deepEqual(
    [res.status, res.text],
    [503, '{"code":3,"message":"Storage unavailable, retry","retryAfterMs":1500}'],
  )
  const socket = await openSocket(server.url('EIO=4&transport=websocket&token=good', 'ws'))
  t.is(await socket.closed, 1013)
  t.deepEqual(socket.messages, [], 'no open packet')
  t.is(server.abandoned.length, 2)
  t.is(server.engine.sessions.size, 0)
})

test('the path is configurable, with or without its trailing slash', async t => {
  const server = await echo(t, { path: '/engine.io' })
  const res = await request(`${server.base}/engine.io/?EIO=4&transport=polling&token=good&id=x`)
  t.is(res.status, 200)
  t.true(res.text.startsWith('0{"sid":"x"'))
  t.is((await request(server.url('EIO=4&transport=polling&token=good'))).status, 404)
  const error = await startEcho({ path: 'engine.io' }).catch((err: unknown) => err)
  t.true(error instanceof Error && error.message.includes("must start with '/'"))
})
