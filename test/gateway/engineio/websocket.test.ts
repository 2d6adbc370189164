import test, { type ExecutionContext } from 'ava'
import type { EngineOptions } from '../../../src/gateway/engineio/server.js'
import { encodeMessage } from '../../../src/gateway/engineio/server.js'
import {
  type EchoServer,
  type RawSocket,
  openSocket,
  request,
  startEcho,
} from '../../helpers/engineio-harness.js'
import { eventually, pause } from '../../helpers/eventually.js'

/** Short timers, with a pingTimeout that a busy CI machine still meets: a client gets 1 s to answer. */
const SHORT = { pingIntervalMs: 300, pingTimeoutMs: 1000 }
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex')

async function echo(t: ExecutionContext, options: Partial<EngineOptions> = {}): Promise<EchoServer> {
  const server = await startEcho(options)
  t.teardown(() => server.stop())
  return server
}

async function connect(t: ExecutionContext, server: EchoServer, query: string): Promise<RawSocket> {
  const socket = await openSocket(server.url(`transport=websocket&token=good&${query}`, 'ws'))
  t.teardown(() => socket.ws.terminate())
  return socket
}

function assertGone(t: ExecutionContext, server: EchoServer): void {
  t.is(server.engine.sessions.size, 0, 'no session left')
  t.is(server.engine.lingering, 0, 'no session lingering')
}

test('W3-1: v3 websocket: open, echo, client pings, probe without upgrade, binary both forms', async t => {
  const server = await echo(t, { pingIntervalMs: 2000, pingTimeoutMs: 1500 })
  const c = await connect(t, server, 'EIO=3&id=zuDgVDbNvZPVqmT2AAAC')
  t.is(
    await c.next(),
    '0{"sid":"zuDgVDbNvZPVqmT2AAAC","upgrades":[],"pingInterval":2000,"pingTimeout":1500,"maxPayload":1000000}',
  )
  c.ws.send('4hi')
  t.is(await c.next(), '4echo:hi')
  c.ws.send('2')
  t.is(await c.next(), '3')
  c.ws.send('2probe')
  t.is(await c.next(), '3', 'not upgrading: a plain pong')
  c.ws.send(hex('04 01 02 03'))
  t.deepEqual(await c.next(), hex('04 01 02 03'))
  c.ws.send('b4AQID')
  t.deepEqual(await c.next(), hex('04 01 02 03'))
  t.is(server.engine.sessions.get('zuDgVDbNvZPVqmT2AAAC')?.transport, 'websocket')
})

test('W3-2, W4-2: b64 websockets get binary as base64 text', async t => {
  const server = await echo(t)
  const v3 = await connect(t, server, 'EIO=3&b64=1')
  await v3.next()
  v3.ws.send(hex('04 09 08'))
  t.is(await v3.next(), 'b4CQg=')
  const v4 = await connect(t, server, 'EIO=4&b64=1')
  await v4.next()
  v4.ws.send(hex('09 08'))
  t.is(await v4.next(), 'bCQg=')
})

test('W4-1: v4 websocket: open, echo, raw binary, base64 binary; encodeMessage sends the same bytes', async t => {
  const server = await echo(t)
  const c = await connect(t, server, 'EIO=4&id=w4&greet=first')
  t.regex(
    (await c.next()) as string,
    /^0\{"sid":"w4","upgrades":\[\],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000\}$/,
  )
  t.is(await c.next(), '4first', 'a send from open() follows the open packet')
  c.ws.send('4hi')
  t.is(await c.next(), '4echo:hi')
  c.ws.send(hex('01 02 03'))
  t.deepEqual(await c.next(), hex('01 02 03'))
  c.ws.send('bAQID')
  t.deepEqual(await c.next(), hex('01 02 03'))
  c.ws.send('4€😀\u2028')
  t.is(await c.next(), '4echo:€😀\u2028')
  const encoded = encodeMessage('to everyone €')
  server.engine.sessions.get('w4')!.sendEncoded(encoded)
  t.is(await c.next(), '4to everyone €')
})

test('W4-3: the v4 server pings every pingInterval; pongs keep the session', async t => {
  const server = await echo(t, SHORT)
  // Bounds are measured from before what starts the server timer (less 5 ms of clock rounding).
  let started = Date.now()
  const c = await connect(t, server, 'EIO=4&id=p')
  await c.next()
  for (let i = 0; i < 3; i++) {
    t.is(await c.next(), '2')
    const elapsed = Date.now() - started
    t.true(elapsed >= 295 && elapsed < 3000, `ping ${i} after ${elapsed} ms`)
    started = Date.now()
    c.ws.send('3')
  }
  t.true(server.engine.sessions.has('p'))
  t.is(await c.next(), '2')
  t.is(await c.closed, 1005, 'no pong: closed without a code')
  t.true(Date.now() - started >= 1295)
  t.is(await server.closeOf('p'), 'ping timeout')
  assertGone(t, server)
})

test('v3 websocket: silence past pingInterval + pingTimeout closes; pings keep it', async t => {
  const server = await echo(t, SHORT)
  const c = await connect(t, server, 'EIO=3&id=q')
  await c.next()
  let started = 0
  for (let i = 0; i < 3; i++) {
    await pause(250) // a ping every 250 ms keeps a 1.3 s timeout from firing
    started = Date.now() // before the ping that restarts the server's timer
    c.ws.send('2')
    t.is(await c.next(), '3')
  }
  t.is(await c.closed, 1005)
  const elapsed = Date.now() - started
  t.true(elapsed >= 1295 && elapsed < 5000, `${elapsed} ms`)
  t.is(await server.closeOf('q'), 'ping timeout')
  assertGone(t, server)
})

test('W4-4, W4-5, W-7, v3 pong: protocol errors and a close packet close the websocket', async t => {
  const server = await echo(t)
  const cases: Array<[string, string, string]> = [
    ['EIO=4', '2', 'invalid heartbeat direction'],
    ['EIO=3', '3', 'invalid heartbeat direction'],
    ['EIO=4', 'abc', 'parse error'],
    ['EIO=3', '', 'parse error'],
    ['EIO=4', '1', 'transport close'],
    ['EIO=3', '1', 'transport close'],
  ]
  for (const [i, [query, frame, reason]] of cases.entries()) {
    const c = await connect(t, server, `${query}&id=e${i}`)
    await c.next()
    c.ws.send(frame)
    t.is(await c.closed, 1005, `${query} ${frame}`)
    t.is(await server.closeOf(`e${i}`), reason, `${query} ${frame}`)
  }
  t.is(server.closed.length, cases.length, 'close() once per session')
  assertGone(t, server)
})

test('W-6: a message past maxPayloadBytes closes with 1009', async t => {
  const server = await echo(t, { maxPayloadBytes: 1000 })
  const c = await connect(t, server, 'EIO=4&id=big')
  await c.next()
  c.ws.send(`4${'x'.repeat(999)}`)
  t.is(((await c.next()) as string).length, 1005, 'exactly maxPayloadBytes passes')
  c.ws.send(`4${'x'.repeat(1000)}`)
  t.is(await c.closed, 1009)
  t.is(await server.closeOf('big'), 'transport error')
  const huge = await connect(t, server, 'EIO=4&id=huge')
  await huge.next()
  huge.ws.send(Buffer.alloc(5000))
  t.is(await huge.closed, 1006, 'far past the bound uWS cuts the connection without reading it')
  t.is(await server.closeOf('huge'), 'transport close')
  assertGone(t, server)
})

test('what a client sends before its open packet (the session preparing) is handled once it opens, in order; past maxPayloadBytes in all: 1009', async t => {
  const server = await echo(t, { maxPayloadBytes: 1000 })
  const c = await connect(t, server, 'EIO=3&id=early&delay=200')
  c.ws.send('4a')
  c.ws.send('2') // a v3 ping
  c.ws.send(Buffer.of(4, 1, 2))
  t.false(server.engine.sessions.has('early'), 'still preparing')
  t.regex((await c.next()) as string, /^0\{"sid":"early"/)
  t.deepEqual([await c.next(), await c.next(), await c.next()], ['4echo:a', '3', Buffer.of(4, 1, 2)])
  t.deepEqual(server.received, ['a', Buffer.of(1, 2)])

  const flood = await connect(t, server, 'EIO=4&id=flood&delay=200')
  flood.ws.send(`4${'x'.repeat(599)}`)
  flood.ws.send(`4${'x'.repeat(399)}`) // 1,000 bytes in all: kept
  flood.ws.send('4y') // one more: over the bound
  t.is(await flood.closed, 1009)
  await eventually(() => server.abandoned.length === 1)
  t.false(server.engine.sessions.has('flood'), 'never opened')
})

test('the server closes: a close frame without a code; the client closes: close() once', async t => {
  const server = await echo(t)
  const a = await connect(t, server, 'EIO=4&id=a')
  await a.next()
  const session = server.engine.sessions.get('a')!
  session.send('bye')
  session.close()
  session.send('ignored')
  t.is(await a.next(), '4bye')
  t.is(await a.closed, 1005)
  t.is(await server.closeOf('a'), 'forced close')
  const b = await connect(t, server, 'EIO=3&id=b')
  await b.next()
  b.ws.close()
  t.is(await server.closeOf('b'), 'transport close')
  t.deepEqual(server.closed, [
    { id: 'a', reason: 'forced close' },
    { id: 'b', reason: 'transport close' },
  ])
  assertGone(t, server)
})

test('a websocket that stops reading is closed past maxBackpressureBytes ("backpressure")', async t => {
  const server = await echo(t, { maxBackpressureBytes: 64 * 1024 })
  const c = await connect(t, server, 'EIO=4&id=slow')
  await c.next()
  const socket = (c.ws as unknown as { _socket: { pause(): void } })._socket
  socket.pause()
  const session = server.engine.sessions.get('slow')!
  const chunk = encodeMessage('x'.repeat(16 * 1024))
  for (let i = 0; i < 10_000 && session.isOpen; i++) session.sendEncoded(chunk)
  t.false(session.isOpen)
  t.is(await server.closeOf('slow'), 'backpressure')
  assertGone(t, server)
})

test('a replaced websocket session is closed; open() gets it as `replaced`; no close() for it', async t => {
  const server = await echo(t)
  const old = await connect(t, server, 'EIO=4&id=same')
  await old.next()
  const fresh = await connect(t, server, 'EIO=3&id=same')
  await fresh.next()
  t.is(await old.closed, 1005)
  t.deepEqual(server.opened, [
    { id: 'same', replaced: false },
    { id: 'same', replaced: true },
  ])
  t.deepEqual(server.closed, [])
  fresh.ws.send('4still here')
  t.is(await fresh.next(), '4echo:still here')
  t.is(server.engine.sessions.get('same')?.protocol, 3)
})

// Upgrade, polling → websocket (docs/consumer-protocol.md §7)

async function pollingSession(server: EchoServer, eio: 3 | 4, id: string) {
  const b64 = eio === 3 ? '&b64=1' : ''
  const open = await request(server.url(`EIO=${eio}&transport=polling&token=good&id=${id}${b64}`))
  if (open.status !== 200) throw new Error(open.text)
  const pollUrl = server.url(`EIO=${eio}&transport=polling&sid=${id}${b64}`)
  return {
    get: () => request(pollUrl),
    post: (body: string) => request(pollUrl, { method: 'POST', body }),
    probe: () => openSocket(server.url(`EIO=${eio}&transport=websocket&sid=${id}`, 'ws')),
  }
}

for (const eio of [3, 4] as const) {
  const noop = eio === 3 ? '1:6' : '6'
  test(`U-${eio - 2}: v${eio} upgrade: probe, noop to the held GET, switch, queued packets in order`, async t => {
    const server = await echo(t)
    const c = await pollingSession(server, eio, 'u')
    const handledFirst = server.handled('get')
    const first = c.get()
    await handledFirst
    const probe = await c.probe()
    t.teardown(() => probe.ws.terminate())
    const session = server.engine.sessions.get('u')!
    session.send('before-probe')
    t.is(
      (await first).text,
      eio === 3 ? '13:4before-probe' : '4before-probe',
      'polling still carries packets',
    )
    const handled = server.handled('get')
    const held = c.get()
    await handled
    probe.ws.send('2probe')
    t.is(await probe.next(), '3probe')
    t.is((await held).text, noop, 'the held GET is released so the client can pause')
    const again = c.get()
    const started = Date.now()
    t.is((await again).text, noop, 'and again while a GET is held')
    t.true(Date.now() - started < 500)
    session.send('during-1')
    session.send('during-2')
    t.is(session.transport, 'polling')
    probe.ws.send('5')
    t.is(await probe.next(), '4during-1')
    t.is(await probe.next(), '4during-2')
    t.is(session.transport, 'websocket')
    probe.ws.send('4after')
    t.is(await probe.next(), '4echo:after')
    session.send('later')
    t.is(await probe.next(), '4later')

    const stale = await c.get()
    t.is(stale.status, 400)
    t.is(stale.text, '{"code":3,"message":"Bad request"}')
    const second = await c.probe()
    t.is(await second.closed, 1005, 'a second websocket on an upgraded sid is accepted and closed at once')
    t.true(session.isOpen)
    probe.ws.close()
    t.is(await server.closeOf('u'), 'transport close')
    assertGone(t, server)
  })
}

test('upgrade timeout: only the probe socket closes; polling goes on', async t => {
  const server = await echo(t, { upgradeTimeoutMs: 200 })
  const c = await pollingSession(server, 4, 'slow')
  const probe = await c.probe()
  probe.ws.send('2probe')
  t.is(await probe.next(), '3probe')
  t.is(await probe.closed, 1005)
  const session = server.engine.sessions.get('slow')!
  t.is(session.transport, 'polling')
  t.true(session.isOpen)
  t.is((await c.post('4still')).text, 'ok')
  t.is((await c.get()).text, '4echo:still')
  const retry = await c.probe()
  retry.ws.send('2probe')
  t.is(await retry.next(), '3probe')
  retry.ws.send('5')
  await eventually(() => session.transport === 'websocket')
  retry.ws.close()
  t.is(await server.closeOf('slow'), 'transport close')
  assertGone(t, server)
})

test('a probe that sends anything else, or goes away, is dropped; the session stays on polling', async t => {
  const server = await echo(t)
  const c = await pollingSession(server, 3, 'p')
  const chatty = await c.probe()
  chatty.ws.send('4hello')
  t.is(await chatty.closed, 1005)
  const quitter = await c.probe()
  quitter.ws.close()
  await quitter.closed
  const session = server.engine.sessions.get('p')!
  t.is(session.transport, 'polling')
  t.deepEqual(server.received, [], 'the probe’s message was not delivered')
  t.is((await c.post('1:2')).text, 'ok')
  t.is((await c.get()).text, '1:3')
  session.close()
  t.is((await c.get()).text, '1:1', 'the close packet, kept for the next GET')
  assertGone(t, server)
})

test('the session closing during a probe closes the probe too', async t => {
  const server = await echo(t)
  const c = await pollingSession(server, 4, 'x')
  const probe = await c.probe()
  probe.ws.send('2probe')
  t.is(await probe.next(), '3probe')
  server.engine.sessions.get('x')!.close()
  t.is(await probe.closed, 1005)
  t.is((await c.get()).text, '1')
  assertGone(t, server)
})

test('v3 after the upgrade: the ping timeout is re-armed (engine.io 6 forgets it)', async t => {
  const server = await echo(t, SHORT)
  const c = await pollingSession(server, 3, 'v3')
  const probe = await c.probe()
  probe.ws.send('2probe')
  t.is(await probe.next(), '3probe')
  probe.ws.send('5')
  const started = Date.now() // before the last ping, which restarts the server's timer
  probe.ws.send('2')
  t.is(await probe.next(), '3')
  t.is(await probe.closed, 1005)
  const elapsed = Date.now() - started
  t.true(elapsed >= 1295 && elapsed < 5000, `closed ${elapsed} ms after the last ping`)
  t.is(await server.closeOf('v3'), 'ping timeout')
  assertGone(t, server)
})

test('v4 after the upgrade: the server keeps pinging over the websocket', async t => {
  const server = await echo(t, SHORT)
  const c = await pollingSession(server, 4, 'v4')
  const probe = await c.probe()
  probe.ws.send('2probe')
  t.is(await probe.next(), '3probe')
  probe.ws.send('5')
  t.is(await probe.next(), '2')
  probe.ws.send('3')
  t.is(await probe.next(), '2')
  t.is(await probe.closed, 1005)
  t.is(await server.closeOf('v4'), 'ping timeout')
  assertGone(t, server)
})

test('with compression, deflated frames go both ways; one inflating past maxPayloadBytes closes 1009, a 1000:1 bomb is cut', async t => {
  const maxPayloadBytes = 10_000
  const server = await echo(t, { compression: true, maxPayloadBytes })
  const open = async (): Promise<RawSocket> => {
    const socket = await openSocket(server.url('transport=websocket&token=good&EIO=4', 'ws'), {
      perMessageDeflate: { threshold: 0 },
    })
    t.teardown(() => socket.ws.terminate())
    await socket.next() // the open packet
    return socket
  }
  const socket = await open()
  t.regex(socket.ws.extensions, /^permessage-deflate/)
  const text = 'é€😀 '.repeat(500)
  socket.ws.send(`4${text}`)
  t.is(await socket.next(), `4echo:${text}`)
  const atLimit = await open()
  atLimit.ws.send(`4${'z'.repeat(maxPayloadBytes - 1)}`)
  t.is(await atLimit.next(), `4echo:${'z'.repeat(maxPayloadBytes - 1)}`)
  const over = await open()
  over.ws.send(`4${'z'.repeat(maxPayloadBytes)}`) // ~50 bytes deflated
  t.is(await over.closed, 1009)
  const bomb = await open()
  bomb.ws.send(`4${'z'.repeat(20_000_000)}`) // ~20 KB deflated
  t.is(await bomb.closed, 1006, 'uWS stops inflating at twice maxPayloadBytes and cuts the connection')
  t.is((await connect(t, server, 'EIO=4')).ws.readyState, 1, 'the server goes on')
})
