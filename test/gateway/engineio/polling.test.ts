import { gunzipSync } from 'node:zlib'
import test, { type ExecutionContext } from 'ava'
import { type EngineOptions, encodeMessage } from '../../../src/gateway/engineio/server.js'
import {
  type EchoServer,
  type RawResponse,
  defaultOptions,
  request,
  startEcho,
} from '../../helpers/engineio-harness.js'
import { eventually, pause } from '../../helpers/eventually.js'

/** Short timers, with a pingTimeout that a busy CI machine still meets: a client gets 1 s to answer. */
const SHORT = { pingIntervalMs: 300, pingTimeoutMs: 1000 }
const SID_UNKNOWN = '{"code":1,"message":"Session ID unknown"}'

async function echo(t: ExecutionContext, options: Partial<EngineOptions> = {}): Promise<EchoServer> {
  const server = await startEcho(options)
  t.teardown(() => server.stop())
  return server
}

/** A polling client speaking raw HTTP to one session. */
function client(server: EchoServer, eio: 3 | 4, sid: string, extra = '') {
  const url = server.url(`EIO=${eio}&transport=polling${extra}&sid=${sid}`)
  return {
    get: (init?: Parameters<typeof request>[1]) => request(url, init),
    post: (body: string | Buffer | Array<string | Buffer>, headers?: Record<string, string>) =>
      request(url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'text/plain;charset=UTF-8', ...headers },
      }),
  }
}

async function handshake(server: EchoServer, eio: 3 | 4, id: string, extra = ''): Promise<RawResponse> {
  const res = await request(server.url(`EIO=${eio}&transport=polling&token=good&id=${id}${extra}`))
  if (res.status !== 200) throw new Error(`handshake failed: ${res.status} ${res.text}`)
  return res
}

function assertOk(t: ExecutionContext, res: RawResponse): void {
  t.is(res.status, 200)
  t.is(res.headers['content-type'], 'text/html')
  t.is(res.text, 'ok')
}

function assertGone(t: ExecutionContext, server: EchoServer): void {
  t.is(server.engine.sessions.size, 0, 'no session left')
  t.is(server.engine.lingering, 0, 'no session lingering')
}

test('P3-1: the v3 handshake, exact bytes and headers', async t => {
  const server = await echo(t, { pingIntervalMs: 2000, pingTimeoutMs: 1500 })
  const res = await handshake(server, 3, '5sk4xMYtb7DKhgzwAAAA', '&b64=1&t=Abc1234')
  t.is(
    res.text,
    '116:0{"sid":"5sk4xMYtb7DKhgzwAAAA","upgrades":["websocket"],"pingInterval":2000,"pingTimeout":1500,"maxPayload":1000000}',
  )
  t.is(res.headers['content-type'], 'text/plain; charset=UTF-8')
  t.is(res.headers['cache-control'], 'no-store')
  t.is(res.headers['content-length'], String(res.body.length))
  t.deepEqual(res.headers['set-cookie'], ['snapper.ws=5sk4xMYtb7DKhgzwAAAA; Path=/; HttpOnly; SameSite=Lax'])
})

test('P3-2: a snapper id with the defaults', async t => {
  const server = await echo(t)
  const res = await handshake(server, 3, 't.VaB_Le4Gx44TV7Ct9IZXAA~~', '&b64=1')
  t.is(
    res.text,
    '124:0{"sid":"t.VaB_Le4Gx44TV7Ct9IZXAA~~","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}',
  )
})

test('P4-1: the v4 handshake', async t => {
  const server = await echo(t, { pingIntervalMs: 2000, pingTimeoutMs: 1500 })
  const res = await handshake(server, 4, 'dHxB2Al8uGzPoU9sAAAD', '&t=Abc12345')
  t.is(
    res.text,
    '0{"sid":"dHxB2Al8uGzPoU9sAAAD","upgrades":["websocket"],"pingInterval":2000,"pingTimeout":1500,"maxPayload":1000000}',
  )
  t.is(res.headers['content-type'], 'text/plain; charset=UTF-8')
})

test('sends from open() follow the open packet in the handshake payload', async t => {
  const server = await echo(t)
  const v3 = await handshake(server, 3, 'a', '&b64=1&greet=hi%E2%82%AC')
  t.regex(v3.text, /^\d+:0\{"sid":"a",[^}]*\}4:4hi€$/)
  const v4 = await handshake(server, 4, 'b', '&greet=hi')
  t.regex(v4.text, /^0\{"sid":"b",[^}]*\}\x1e4hi$/)
})

test('P3-3, P3-4, P3-5, P3-6, P3-8: v3 text payloads both ways', async t => {
  const server = await echo(t)
  await handshake(server, 3, 's', '&b64=1')
  const c = client(server, 3, 's', '&b64=1&t=Q8PVREL')
  assertOk(t, await c.post('6:4hello2:4€'))
  t.is((await c.get()).text, '11:4echo:hello7:4echo:€')
  assertOk(t, await c.post('1:2'))
  t.is((await c.get()).text, '1:3')
  assertOk(t, await c.post('6:2probe'))
  t.is((await c.get()).text, '1:3', 'a probe over polling is a plain ping')
  assertOk(t, await c.post('3:4😀'))
  const res = await c.get()
  t.is(res.text, '8:4echo:😀')
  t.is(res.headers['content-type'], 'text/plain; charset=UTF-8')
  t.deepEqual(server.received, ['hello', '€', '😀'])
})

test('P3-7: binary over a b64 v3 session is base64 text both ways', async t => {
  const server = await echo(t)
  await handshake(server, 3, 's', '&b64=1')
  const c = client(server, 3, 's', '&b64=1')
  assertOk(t, await c.post('10:b4AQIDBA=='))
  const res = await c.get()
  t.is(res.text, '10:b4AQIDBA==')
  t.is(res.headers['content-type'], 'text/plain; charset=UTF-8')
  t.deepEqual(server.received, [Buffer.from([1, 2, 3, 4])])
})

test('P3-9: the v3 binary payload form, both ways, without b64', async t => {
  const server = await echo(t)
  await handshake(server, 3, 's')
  const c = client(server, 3, 's')
  const body = Buffer.from('0006ff3468656c6c6f0105ff0401020304', 'hex')
  assertOk(t, await c.post(body, { 'content-type': 'application/octet-stream' }))
  const res = await c.get()
  t.is(res.headers['content-type'], 'application/octet-stream')
  t.is(res.body.toString('hex'), '000101ff346563686f3a68656c6c6f0105ff0401020304')
  assertOk(t, await c.post('2:4x'))
  t.is((await c.get()).text, '7:4echo:x', 'text form when the batch holds no binary data')
})

test('P3-10, P4-5: a parse error or a v4 client ping closes the session; the POST still gets ok', async t => {
  const server = await echo(t)
  await handshake(server, 3, 'v3', '&b64=1')
  assertOk(t, await client(server, 3, 'v3').post('abc'))
  t.is((await client(server, 3, 'v3').get()).text, SID_UNKNOWN)
  t.is(await server.closeOf('v3'), 'parse error')
  await handshake(server, 4, 'v4')
  assertOk(t, await client(server, 4, 'v4').post('2'))
  t.is((await client(server, 4, 'v4').get()).text, SID_UNKNOWN)
  t.is(await server.closeOf('v4'), 'invalid heartbeat direction')
  await handshake(server, 3, 'pong3', '&b64=1')
  assertOk(t, await client(server, 3, 'pong3').post('1:3'))
  t.is(await server.closeOf('pong3'), 'invalid heartbeat direction')
  assertGone(t, server)
})

test('P3-11, P3-12, P4-7: the client closes; a held GET is released with a noop', async t => {
  const server = await echo(t)
  await handshake(server, 3, 'a', '&b64=1')
  assertOk(t, await client(server, 3, 'a').post('1:1'))
  t.is((await client(server, 3, 'a').get()).text, SID_UNKNOWN)
  t.is(await server.closeOf('a'), 'transport close')

  await handshake(server, 3, 'b', '&b64=1')
  const handledV3 = server.handled('get')
  const heldV3 = client(server, 3, 'b').get()
  await handledV3
  assertOk(t, await client(server, 3, 'b').post('1:1'))
  t.is((await heldV3).text, '1:6')

  await handshake(server, 4, 'c')
  const handledV4 = server.handled('get')
  const heldV4 = client(server, 4, 'c').get()
  await handledV4
  assertOk(t, await client(server, 4, 'c').post('1'))
  t.is((await heldV4).text, '6')
  t.is((await client(server, 4, 'c').get()).text, SID_UNKNOWN)
  t.deepEqual(
    server.closed.map(closed => closed.reason),
    ['transport close', 'transport close', 'transport close'],
  )
  assertGone(t, server)
})

// The sid of a Snapper session is the consumer id, the same for every handshake of one token: a
// client whose session a newer handshake replaced still sends with that sid until it learns
// (docs/consumer-protocol.md §3). Below, A is the replaced client, B the newer one.
for (const aHoldsAGet of [true, false]) {
  test(`a polling client replaced ${aHoldsAGet ? 'while its GET is held' : 'between two GETs'} gets the close packet; its close packet posted before it knew closes nothing`, async t => {
    const server = await echo(t)
    const sid = 't.VaB_Le4Gx44TV7Ct9IZXAA~~'
    const same = client(server, 4, sid)
    await handshake(server, 4, sid)
    const handled = server.handled('get')
    const held = aHoldsAGet ? same.get() : undefined
    if (held) await handled
    await handshake(server, 4, sid) // B
    t.deepEqual(server.opened, [
      { id: sid, replaced: false },
      { id: sid, replaced: true },
    ])
    t.is((await (held ?? same.get())).text, '1', "A's GET")
    t.like(
      await same.post('4from A\x1e1'),
      { status: 400, text: SID_UNKNOWN },
      "A's close, and what came with it",
    )
    t.is(server.engine.replacedClosesDropped, 1, 'counted')

    assertOk(t, await same.post('4from B'))
    t.is((await same.get()).text, '4echo:from B', "B's GET, B's packets")
    t.deepEqual(server.received, ['from B'])
    t.deepEqual(server.closed, [], 'B is live')
    t.is(server.engine.lingering, 0)
  })
}

test('a session that replaced a polling client takes a close packet from its own client once pingTimeoutMs is over', async t => {
  const server = await echo(t, { pingTimeoutMs: 200 })
  await handshake(server, 4, 's')
  await handshake(server, 4, 's')
  await pause(250)
  assertOk(t, await client(server, 4, 's').post('1'))
  t.is(await server.closeOf('s'), 'transport close')
  t.is(
    (await client(server, 4, 's').get()).text,
    SID_UNKNOWN,
    'the lingering close went to nobody, and is gone',
  )
  assertGone(t, server)
})

test('P3-13: an idle v3 session times out after pingInterval + pingTimeout; the held GET gets 1:1', async t => {
  const server = await echo(t, SHORT)
  // Bounds are measured from before what starts the server timer (less 5 ms of clock rounding).
  const started = Date.now()
  await handshake(server, 3, 'idle', '&b64=1')
  const held = await client(server, 3, 'idle').get()
  const elapsed = Date.now() - started
  t.is(held.text, '1:1')
  t.true(elapsed >= 1295 && elapsed < 5000, `${elapsed} ms`)
  t.is(await server.closeOf('idle'), 'ping timeout')
  t.is((await client(server, 3, 'idle').get()).text, SID_UNKNOWN)
  assertGone(t, server)
})

test('v3: any packet restarts the timeout, pings are answered', async t => {
  const server = await echo(t, SHORT)
  await handshake(server, 3, 'live', '&b64=1')
  const c = client(server, 3, 'live')
  for (let i = 0; i < 6; i++) {
    await pause(250) // traffic every 250 ms keeps a 1.3 s timeout from firing
    assertOk(t, await c.post(i % 2 === 0 ? '1:2' : '2:4x'))
    t.regex((await c.get()).text, /^(1:3|7:4echo:x)$/)
  }
  t.true(server.engine.sessions.has('live'), 'alive after 1.5 s of traffic with 1.3 s timeouts')
  server.engine.sessions.get('live')?.close()
  t.is(await server.closeOf('live'), 'forced close')
})

test('P4-2, P4-3: v4 payloads both ways; binary always base64', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const c = client(server, 4, 's', '&t=zpmjla9f')
  assertOk(t, await c.post('4hello\x1e4€'))
  t.is((await c.get()).text, '4echo:hello\x1e4echo:€')
  assertOk(t, await c.post('bAQIDBA=='))
  t.is((await c.get()).text, 'bAQIDBA==')
  t.deepEqual(server.received, ['hello', '€', Buffer.from([1, 2, 3, 4])])
})

test('P4-4: a v4 octet-stream POST: 400 empty, session closed', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const res = await client(server, 4, 's').post(Buffer.from([1, 2, 3]), {
    'content-type': 'application/octet-stream',
  })
  t.is(res.status, 400)
  t.is(res.text, '')
  t.is((await client(server, 4, 's').get()).text, SID_UNKNOWN)
  t.is(await server.closeOf('s'), 'transport error')
  assertGone(t, server)
})

test('P4-6: two GETs at once: the second 400 empty, the first gets the close packet', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const handled = server.handled('get')
  const first = client(server, 4, 's').get()
  await handled
  const second = await client(server, 4, 's').get()
  t.is(second.status, 400)
  t.is(second.text, '')
  t.is((await first).text, '1')
  t.is((await client(server, 4, 's').get()).text, SID_UNKNOWN)
  t.is(await server.closeOf('s'), 'transport error')
  assertGone(t, server)
})

test('two POSTs at once: the second 400 empty, the session closed', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const c = client(server, 4, 's')
  const handled = server.handled('post')
  const slow = c.post(['4a', ...Array.from({ length: 10 }, () => 'b')]) // ten writes, 5 ms apart
  await handled
  const second = await c.post('4c')
  t.is(second.status, 400)
  t.is(second.text, '')
  t.is(await server.closeOf('s'), 'transport error')
  t.is((await slow).status, 200, 'the first body is still read and answered')
  t.deepEqual(server.received, [], 'nothing delivered from a closed session')
  assertGone(t, server)
})

test('an aborted held GET closes the session', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const abort = new AbortController()
  const handled = server.handled('get')
  const held = client(server, 4, 's').get({ signal: abort.signal })
  await handled
  abort.abort()
  await t.throwsAsync(held)
  t.is(await server.closeOf('s'), 'transport error')
  assertGone(t, server)
})

test('P4-8: v4 server pings every pingInterval, expects the pong within pingTimeout', async t => {
  const server = await echo(t, SHORT)
  let started = Date.now() // bounds from before what starts the server timer (less 5 ms of clock rounding)
  await handshake(server, 4, 's')
  const c = client(server, 4, 's')
  for (let i = 0; i < 2; i++) {
    t.is((await c.get()).text, '2')
    const elapsed = Date.now() - started
    t.true(elapsed >= 295 && elapsed < 3000, `ping ${i} after ${elapsed} ms`)
    started = Date.now()
    assertOk(t, await c.post('3'))
  }
  t.is((await c.get()).text, '2')
  t.is((await c.get()).text, '1', 'no pong: the held GET gets the close packet')
  const elapsed = Date.now() - started
  t.true(elapsed >= 1295 && elapsed < 5000, `timeout ${elapsed} ms after the last pong`)
  t.is(await server.closeOf('s'), 'ping timeout')
  t.is((await c.get()).text, SID_UNKNOWN)
  assertGone(t, server)
})

test('P4-9: a body past maxPayloadBytes: 413 empty, declared or streamed', async t => {
  const server = await echo(t)
  await handshake(server, 4, 'declared')
  const declared = await client(server, 4, 'declared').post(`4${'x'.repeat(1_000_001)}`)
  t.is(declared.status, 413)
  t.is(declared.text, '')
  t.is(await server.closeOf('declared'), 'transport error')

  const small = await echo(t, { maxPayloadBytes: 1000 })
  await handshake(small, 4, 'streamed')
  const streamed = await request(small.url('EIO=4&transport=polling&sid=streamed'), {
    method: 'POST',
    body: ['4', 'x'.repeat(600), 'x'.repeat(600)],
    headers: { 'transfer-encoding': 'chunked' },
  })
  t.is(streamed.status, 413)
  t.is(await small.closeOf('streamed'), 'transport error')
  await handshake(small, 4, 'fits')
  assertOk(t, await client(small, 4, 'fits').post(`4${'x'.repeat(999)}`))
  assertGone(t, server)
})

test('P4-10: a held payload of 1024 bytes or more is gzipped when the client accepts it', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const c = client(server, 4, 's')
  const text = 'é'.repeat(2000)
  assertOk(t, await c.post(`4${text}`))
  const res = await c.get({ headers: { 'accept-encoding': 'gzip, deflate' } })
  t.is(res.headers['content-encoding'], 'gzip')
  t.is(gunzipSync(res.body).toString(), `4echo:${text}`)
  assertOk(t, await c.post(`4${text}`))
  const plain = await c.get()
  t.is(plain.headers['content-encoding'], undefined)
  t.is(plain.text, `4echo:${text}`)
})

test('a POST body split at every byte decodes the same (uWS hands it over in chunks)', async t => {
  const server = await echo(t)
  await handshake(server, 3, 's', '&b64=1')
  const c = client(server, 3, 's')
  const body = Buffer.from('6:4hello2:4€')
  for (let cut = 1; cut < body.length; cut++) {
    assertOk(t, await c.post([body.subarray(0, cut), body.subarray(cut)]))
    t.is((await c.get()).text, '11:4echo:hello7:4echo:€', `cut ${cut}`)
  }
})

test('sends in one tick go out as one payload; order is kept', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const handled = server.handled('get')
  const held = client(server, 4, 's').get()
  await handled
  const session = server.engine.sessions.get('s')!
  session.send('a')
  session.send('b')
  session.sendBinary(Buffer.from([7]))
  t.is((await held).text, '4a\x1e4b\x1ebBw==')
})

test('the server closes with a held GET: it gets the queued packets and the close packet', async t => {
  const server = await echo(t)
  await handshake(server, 3, 's', '&b64=1')
  const handled = server.handled('get')
  const held = client(server, 3, 's').get()
  await handled
  const session = server.engine.sessions.get('s')!
  session.send('bye')
  session.close('done')
  session.send('ignored')
  t.is((await held).text, '4:4bye1:1')
  t.is(await server.closeOf('s'), 'done')
  assertGone(t, server)
})

test('the server closes with no GET held: the next GET gets the close packet, then the sid is gone', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const session = server.engine.sessions.get('s')!
  session.send('last')
  session.close()
  t.is(server.engine.sessions.size, 0)
  t.is(server.engine.lingering, 1)
  t.is(await server.closeOf('s'), 'forced close', 'close() runs at once')
  const c = client(server, 4, 's')
  t.is((await c.post('4late')).text, SID_UNKNOWN, 'only a GET is served after the close')
  t.is((await c.get()).text, '4last\x1e1')
  t.is((await c.get()).text, SID_UNKNOWN)
  assertGone(t, server)
})

test('a close packet nobody comes for is forgotten after pingTimeout', async t => {
  const server = await echo(t, SHORT)
  await handshake(server, 4, 's')
  server.engine.sessions.get('s')!.close()
  t.is(server.engine.lingering, 1)
  await eventually(() => server.engine.lingering === 0, { timeoutMs: 5000 })
  t.is((await client(server, 4, 's').get()).text, SID_UNKNOWN)
  assertGone(t, server)
})

test('a polling queue past maxBackpressureBytes closes the session ("backpressure")', async t => {
  const server = await echo(t, { maxBackpressureBytes: 1000 })
  await handshake(server, 4, 's')
  const session = server.engine.sessions.get('s')!
  for (let i = 0; i < 20 && session.isOpen; i++) session.send('x'.repeat(100))
  t.false(session.isOpen)
  t.is(await server.closeOf('s'), 'backpressure')
  t.is((await client(server, 4, 's').get()).text, SID_UNKNOWN)
  assertGone(t, server)
})

test('one packet past maxBackpressureBytes goes out whole in one response; the session goes on', async t => {
  const server = await echo(t)
  await handshake(server, 4, 's')
  const session = server.engine.sessions.get('s')!
  const c = client(server, 4, 's')
  // The reviewer's batch: 262,144 characters (batchMaxBytes) that JSON escapes to 6 bytes each.
  const frame = `{"params":[${JSON.stringify('\u0001'.repeat(256 * 1024))}]}`
  const big = encodeMessage(frame)
  t.true(big.byteLength > defaultOptions.maxBackpressureBytes)

  const handled = server.handled('get')
  const held = c.get()
  await handled
  session.sendEncoded(big)
  t.is((await held).text, `4${frame}`, 'to a held GET')
  t.true(session.isOpen)

  session.sendEncoded(big) // no GET held: it waits, and a little may queue behind it
  session.send('after')
  t.is((await c.get()).text, `4${frame}\x1e4after`, 'to the next GET')
  assertOk(t, await c.post('4hello'))
  t.is((await c.get()).text, '4echo:hello')
  t.true(session.isOpen)
  t.deepEqual(server.closed, [])
})

test('what queues behind an oversized packet is still bounded by maxBackpressureBytes', async t => {
  const server = await echo(t, { maxBackpressureBytes: 1000 })
  await handshake(server, 4, 's')
  const session = server.engine.sessions.get('s')!
  session.send('x'.repeat(5000))
  t.true(session.isOpen)
  let sent = 0
  for (; sent < 20 && session.isOpen; sent++) session.send('x'.repeat(100))
  t.is(sent, 10, 'the tenth 101-byte packet behind it passes the limit')
  t.is(await server.closeOf('s'), 'backpressure')
})

test('open() sending one packet past maxBackpressureBytes: the handshake answers it with the open packet', async t => {
  const server = await echo(t, { maxBackpressureBytes: 1000 })
  const greet = 'g'.repeat(1500) // past maxBackpressureBytes, within maxQueryBytes (2048)
  const res = await handshake(server, 3, 's', `&b64=1&greet=${greet}`)
  t.regex(res.text, new RegExp(`^\\d+:0\\{"sid":"s",[^}]*\\}1501:4${greet}$`))
  const c = client(server, 3, 's', '&b64=1')
  assertOk(t, await c.post('3:4hi'))
  t.is((await c.get()).text, '8:4echo:hi')
  t.true(server.engine.sessions.get('s')!.isOpen)
})

test('Engine.close(): held GETs get the close packet, nothing lingers, new handshakes get 503', async t => {
  const server = await echo(t)
  await handshake(server, 4, 'held')
  await handshake(server, 4, 'idle')
  const handled = server.handled('get')
  const held = client(server, 4, 'held').get()
  await handled
  server.engine.close()
  t.is((await held).text, '1')
  t.deepEqual(
    server.closed.map(closed => closed.reason),
    ['server shutdown', 'server shutdown'],
  )
  assertGone(t, server)
  const late = await request(server.url('EIO=4&transport=polling&token=good'))
  t.is(late.status, 503)
  t.is(late.text, '{"code":3,"message":"Shutting down"}')
})

test('a replaced polling session: its held GET gets the close packet, close() is not called for it', async t => {
  const server = await echo(t)
  await handshake(server, 4, 'same')
  const handled = server.handled('get')
  const held = client(server, 4, 'same').get()
  await handled
  await handshake(server, 4, 'same')
  t.is((await held).text, '1')
  t.deepEqual(server.opened, [
    { id: 'same', replaced: false },
    { id: 'same', replaced: true },
  ])
  t.deepEqual(server.closed, [])
  t.is(server.engine.sessions.size, 1)
  server.engine.sessions.get('same')!.close()
  t.deepEqual(server.closed, [{ id: 'same', reason: 'forced close' }])
})
