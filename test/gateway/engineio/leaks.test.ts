import test from 'ava'
import {
  defaultOptions,
  openSocket,
  request,
  startEcho,
  startEchoWith,
} from '../../helpers/engineio-harness.js'
import { eventually } from '../../helpers/eventually.js'

/** Node timers alive in this process (the engine's heartbeat, upgrade, nudge and linger timers among them). */
const liveTimers = (): number => process.getActiveResourcesInfo().filter(kind => kind === 'Timeout').length

// Alone in its file and serial, so that the timer count is this test's only.
test.serial('no session and no timer outlives any way a session ends', async t => {
  const server = await startEcho({ pingIntervalMs: 300, pingTimeoutMs: 1000, upgradeTimeoutMs: 100 })
  t.teardown(() => server.stop())
  const baseline = liveTimers()
  const poll = (eio: 3 | 4, sid: string, init?: Parameters<typeof request>[1]) =>
    request(server.url(`EIO=${eio}&transport=polling&sid=${sid}`), init)
  const open = (eio: 3 | 4, id: string) =>
    request(server.url(`EIO=${eio}&transport=polling&token=good&id=${id}&b64=1`))

  // Overlapping GETs.
  await open(4, 'overlap')
  let handled = server.handled('get')
  const first = poll(4, 'overlap')
  await handled
  await poll(4, 'overlap')
  await first
  // An aborted GET.
  await open(3, 'abort')
  const abort = new AbortController()
  handled = server.handled('get')
  const aborted = poll(3, 'abort', { signal: abort.signal })
  await handled
  abort.abort()
  await t.throwsAsync(aborted)
  // An upgrade that times out, then one that completes, then the client leaves.
  await open(4, 'upgrade')
  const late = await openSocket(server.url('EIO=4&transport=websocket&sid=upgrade', 'ws'))
  late.ws.send('2probe')
  await late.next()
  await late.closed
  const probe = await openSocket(server.url('EIO=4&transport=websocket&sid=upgrade', 'ws'))
  probe.ws.send('2probe')
  await probe.next()
  probe.ws.send('5')
  await eventually(() => server.engine.sessions.get('upgrade')?.transport === 'websocket')
  probe.ws.close()
  // A session closed while probing.
  await open(3, 'probing')
  const doomed = await openSocket(server.url('EIO=3&transport=websocket&sid=probing', 'ws'))
  doomed.ws.send('2probe')
  await doomed.next()
  server.engine.sessions.get('probing')?.close()
  await doomed.closed
  // A replaced websocket session, a v3 session left to time out, a close nobody polls for.
  const old = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=same', 'ws'))
  const fresh = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=same', 'ws'))
  await old.closed
  await open(3, 'silent')
  await open(4, 'unpolled')
  server.engine.sessions.get('unpolled')?.close()
  await server.closeOf('silent')
  // Live sessions of every kind, closed by the engine.
  await open(3, 'live-polling') // v3: the server sends no ping that could answer the held GET first
  handled = server.handled('get')
  const held = poll(3, 'live-polling')
  await handled
  server.engine.close()
  t.is((await held).text, '1:1')
  await fresh.closed

  await eventually(() => server.engine.sessions.size === 0 && server.engine.lingering === 0)
  t.deepEqual(
    server.closed.map(closed => closed.id).sort(),
    ['abort', 'live-polling', 'overlap', 'probing', 'same', 'silent', 'unpolled', 'upgrade'],
    'close() once per session, the replaced one aside',
  )
  // At once: a forgotten heartbeat timer would fire later and vanish by itself.
  t.true(liveTimers() <= baseline, `${liveTimers()} timers, ${baseline} before`)
})

test.serial(
  'idle v4 sessions hold no heartbeat timer each: all are pinged every pingInterval, the silent one times out',
  async t => {
    const server = await startEcho({ pingIntervalMs: 200, pingTimeoutMs: 300 })
    t.teardown(() => server.stop())
    const baseline = liveTimers()
    const sockets = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        openSocket(server.url(`EIO=4&transport=websocket&token=good&id=idle${i}`, 'ws')),
      ),
    )
    // One timer per heartbeat phase serves them all (docs/performance.md section 1 item 23), not one each.
    t.true(liveTimers() <= baseline + 2, `${liveTimers()} timers for 20 sessions, ${baseline} before`)
    const pings = sockets.map(() => 0)
    sockets.forEach((socket, i) =>
      socket.ws.on('message', (data: Buffer) => {
        if (data.toString() !== '2') return
        pings[i]!++
        if (i > 0) socket.ws.send('3') // idle0 never answers
      }),
    )
    t.is(await server.closeOf('idle0'), 'ping timeout')
    await eventually(() => pings.slice(1).every(count => count >= 2))
    t.is(server.engine.sessions.size, 19, 'the others answered and stay')
    t.is(pings[0], 1, 'no second ping to the silent one')
    server.engine.close()
    await eventually(() => server.engine.sessions.size === 0)
    t.true(liveTimers() <= baseline, `${liveTimers()} timers, ${baseline} before`)
  },
)

test.serial(
  'two engines given one options object each run their own heartbeat timers: closing one leaves the other pinging',
  async t => {
    const options = { ...defaultOptions, pingIntervalMs: 200, pingTimeoutMs: 300 }
    const closing = await startEchoWith(options)
    t.teardown(() => closing.stop())
    const staying = await startEchoWith(options)
    t.teardown(() => staying.stop())
    const baseline = liveTimers()
    const [, kept] = await Promise.all(
      [closing, staying].map(server =>
        openSocket(server.url('EIO=4&transport=websocket&token=good&id=idle', 'ws')),
      ),
    )
    t.is((await kept!.next()).toString()[0], '0', 'the open packet')
    // Each engine owns its phases (heartbeat.ts, Heartbeats): one interval timer each, not one between them.
    t.is(liveTimers() - baseline, 2, 'one heartbeat timer per engine')
    closing.engine.close()
    await eventually(() => closing.engine.sessions.size === 0 && closing.engine.lingering === 0)
    t.true(liveTimers() <= baseline + 1, `${liveTimers()} timers, ${baseline} before`)
    t.is(await kept!.next(), '2', 'the other engine pings on')
    staying.engine.close()
    await eventually(() => staying.engine.sessions.size === 0 && staying.engine.lingering === 0)
    t.true(liveTimers() <= baseline, `${liveTimers()} timers, ${baseline} before`)
  },
)
