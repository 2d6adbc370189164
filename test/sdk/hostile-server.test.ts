/**
 * The consumer SDK against a broken or hostile Engine.IO server: a loopback
 * HTTP server stands in for a gateway and answers what no gateway sends.
 * Nothing may escape the SDK (the test process would see it), no timer may
 * spin, and the consumer reports what happened and reconnects.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { pack } from 'msgpackr'
import { WebSocketServer, type RawData } from 'ws'
import { Consumer, SDK_ERRORS, type ConsumerState, type StateDetails } from '../../src/sdk/consumer/node.js'
import { eventually, pause } from '../helpers/eventually.js'

/** An open packet as a gateway sends it; `fields` overrides. */
const open = (fields: Record<string, unknown> = {}): string =>
  `0${JSON.stringify({ sid: 's1', pingInterval: 25_000, pingTimeout: 20_000, upgrades: [], ...fields })}`

interface Answer {
  readonly status?: number
  readonly body: string
}

/**
 * A polling-only fake gateway: `handshake` answers each GET without a sid;
 * polls with one are held 1 s and answered with a noop, or with what
 * `push` gives; `posted` gets each POST's body. Counts the handshakes.
 */
async function fakeGateway(
  t: ExecutionContext,
  handshake: (count: number) => Answer,
  posted: (body: string) => void = () => {},
): Promise<{ url: string; handshakes: () => number; push: (payload: string) => void }> {
  let handshakes = 0
  let pushed: string | undefined
  const held = new Set<() => void>()
  const server = createServer((req: IncomingMessage, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      if (req.method === 'POST') {
        posted(body)
        return res.end('ok')
      }
      if (new URL(req.url ?? '/', 'http://x').searchParams.has('sid')) {
        const answer = (): void => {
          held.delete(answer)
          clearTimeout(timer)
          res.end(pushed ?? '6')
          pushed = undefined
        }
        const timer = setTimeout(answer, 1000)
        held.add(answer)
        res.on('close', () => clearTimeout(timer))
        return
      }
      const answer = handshake(++handshakes)
      const status = answer.status ?? 200
      res.writeHead(status, { 'content-type': status === 200 ? 'text/plain' : 'application/json' })
      res.end(answer.body)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handshakes: () => handshakes,
    push: payload => {
      pushed = payload
      for (const answer of held) answer()
    },
  }
}

/** A polling consumer of `url`, its state changes recorded; closed at the test's end. */
function watchedConsumer(
  t: ExecutionContext,
  url: string,
): { consumer: Consumer; states: (readonly [ConsumerState, StateDetails])[] } {
  const consumer = new Consumer(url, { token: 't', transports: ['polling'], reconnectMinMs: 100 })
  t.teardown(() => consumer.close())
  const states: (readonly [ConsumerState, StateDetails])[] = []
  consumer.on('state', (state, details) => states.push([state, details]))
  return { consumer, states }
}

/** What escaped the SDK while the test ran: an exception or a rejection no handler caught. */
function escapes(t: ExecutionContext): unknown[] {
  const escaped: unknown[] = []
  const record = (error: unknown): void => {
    escaped.push(error)
  }
  process.on('uncaughtException', record)
  process.on('unhandledRejection', record)
  t.teardown(() => {
    process.off('uncaughtException', record)
    process.off('unhandledRejection', record)
  })
  return escaped
}

test('a polling `b` packet that is not base64 ends the session with that reason, and the consumer reconnects', async t => {
  const escaped = escapes(t)
  const gateway = await fakeGateway(t, () => ({ body: `${open()}\x1eb!!not base64!!` }))
  const { consumer, states } = watchedConsumer(t, gateway.url)
  await consumer.connect()
  const [, details] = await eventually(() => states.find(([state]) => state === 'reconnecting'))
  t.regex(details.reason ?? '', /base64/)
  await eventually(() => gateway.handshakes() >= 2, { what: 'a second handshake' })
  t.deepEqual(escaped, [])
})

/** A polling consumer with a backoff of 100 ms to 1 s, and the delay of each of its reconnects. */
function pacedConsumer(t: ExecutionContext, url: string): { consumer: Consumer; delays: number[] } {
  const consumer = new Consumer(url, {
    token: 't',
    transports: ['polling'],
    reconnectMinMs: 100,
    reconnectMaxMs: 1000,
  })
  t.teardown(() => consumer.close())
  const delays: number[] = []
  consumer.on('state', (state, { retryInMs }) => {
    if (state === 'reconnecting') delays.push(retryInMs ?? Number.NaN)
  })
  return { consumer, delays }
}

for (const retryAfterMs of [-1000, 0, 1e12]) {
  test(`a 503 whose retryAfterMs is ${retryAfterMs}: the consumer waits its own backoff at least and reconnectMaxMs at most`, async t => {
    const gateway = await fakeGateway(t, () => ({
      status: 503,
      body: JSON.stringify({ code: 3, message: 'full', retryAfterMs }),
    }))
    const { consumer, delays } = pacedConsumer(t, gateway.url)
    void consumer.connect().catch(() => {})
    await eventually(() => delays.length >= 3, { what: 'three refusals' })
    for (const delay of delays.slice(0, 3)) t.true(delay >= 50 && delay <= 1000, `waits ${delay} ms`)
  })
}

test('a reconnect notice asking for 1e12 ms: the consumer comes back after reconnectMaxMs', async t => {
  const notice = '4{"jsonrpc":"2.0","method":"reconnect","params":[{"retryAfterMs":1e12}]}'
  const gateway = await fakeGateway(t, () => ({ body: [open(), notice, '1'].join('\x1e') }))
  const { consumer, delays } = pacedConsumer(t, gateway.url)
  await consumer.connect()
  await eventually(() => gateway.handshakes() >= 2, { what: 'a second handshake' })
  t.true(delays[0]! >= 50 && delays[0]! <= 1000, `waits ${delays[0]} ms`)
})

test('sessions the server opens and ends at once: the reconnect delays grow as after failures, not the shortest each time', async t => {
  const gateway = await fakeGateway(t, () => ({ body: [open(), '1'].join('\x1e') }))
  const { consumer, delays } = pacedConsumer(t, gateway.url)
  await consumer.connect()
  await eventually(() => delays.length >= 4, { what: 'four reconnects' })
  // Backoff from 100 ms, doubling: the fourth wait is drawn in [400, 800] ms; at the shortest, [50, 100].
  t.true(delays[3]! >= 400, `waits ${delays.slice(0, 4).map(Math.round).join(', ')} ms`)
})

for (const [pingInterval, pingTimeout] of [
  [0, 0],
  [-100_000, 20_000],
  [2 ** 32, 20_000],
  ['1e400', 20_000],
] as const) {
  test(`an open packet with pingInterval ${pingInterval} and pingTimeout ${pingTimeout} is a bad open packet: no session without a heartbeat that a timer can keep`, async t => {
    // 1e400 is JSON for Infinity.
    const body = open({ pingTimeout }).replace('25000', String(pingInterval))
    const gateway = await fakeGateway(t, () => ({ body }))
    const { consumer, states } = watchedConsumer(t, gateway.url)
    void consumer.connect().catch(() => {})
    const [, details] = await eventually(() => states.find(([state]) => state === 'reconnecting'))
    t.is(details.reason, 'bad open packet')
    t.false(
      states.some(([state]) => state === 'open'),
      'a heartbeat of 0 ms never times out; one past 2^31 ms or negative times out at once',
    )
  })
}

test('a delivery whose runs are not [room, storedAtMs, seq, strings]: each such run is an `error` event PROTOCOL, the good ones arrive, and the batch is acknowledged', async t => {
  const runs = [
    ['r', 1, 1, [null, 7, { a: 1 }]],
    ['r', 1, '4', ['seq is text']],
    ['r', 1, 5, 'not an array'],
    ['r', 1, 6, ['good']],
  ]
  const deliver = `4${JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'deliver', params: runs })}`
  const posts: string[] = []
  const gateway = await fakeGateway(
    t,
    () => ({ body: `${open()}\x1e${deliver}` }),
    body => posts.push(body),
  )
  const { consumer } = watchedConsumer(t, gateway.url)
  const messages: unknown[] = []
  const errors: [number, string][] = []
  consumer.on('message', message => messages.push(message))
  consumer.on('error', ({ code, message }) => errors.push([code, message]))
  await consumer.connect()
  await eventually(() => posts.some(body => body.includes('"id":9')), { what: 'the acknowledgement' })
  t.deepEqual(messages, ['good'])
  t.deepEqual(errors, [
    [SDK_ERRORS.PROTOCOL, 'a delivery run is not [room, storedAtMs, seq, messages]'],
    [SDK_ERRORS.PROTOCOL, 'a delivery run is not [room, storedAtMs, seq, messages]'],
    [SDK_ERRORS.PROTOCOL, 'a delivery run is not [room, storedAtMs, seq, messages]'],
  ])
})

test('a handshake answered 200 with an HTML page (a misrouted proxy): the consumer backs off instead of polling again at once', async t => {
  const gateway = await fakeGateway(t, () => ({ body: '<!doctype html><title>Welcome</title>' }))
  const { consumer, states } = watchedConsumer(t, gateway.url)
  void consumer.connect().catch(() => {})
  await new Promise(resolve => setTimeout(resolve, 1000))
  // The backoff from 100 ms: 50-100, 100-200, 200-400, 400-800 ms, so 5 handshakes at most in a second.
  t.true(gateway.handshakes() <= 6, `${gateway.handshakes()} handshakes in 1 s`)
  t.is(states.find(([state]) => state === 'reconnecting')?.[1].reason, 'bad packet')
})

for (const [what, packet] of [
  ['empty', ''],
  ['of unknown type', '9junk'],
] as const) {
  test(`a polling packet ${what} in an open session ends it as a bad packet, and the consumer reconnects`, async t => {
    const gateway = await fakeGateway(t, () => ({ body: `${open()}\x1e${packet}` }))
    const { consumer, states } = watchedConsumer(t, gateway.url)
    await consumer.connect()
    const [, details] = await eventually(() => states.find(([state]) => state === 'reconnecting'))
    t.is(details.reason, 'bad packet')
    await eventually(() => gateway.handshakes() >= 2, { what: 'a second handshake' })
  })
}

test('a websocket binary frame before the open packet is no delivery: it reaches no listener and is not acknowledged', async t => {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  t.teardown(() => {
    for (const client of server.clients) client.terminate()
    server.close()
  })
  const deliver = (id: number, seq: number, message: string): Buffer =>
    pack({ jsonrpc: '2.0', id, method: 'deliver', params: [['room', 1, seq, [message]]] })
  const acks: unknown[] = []
  server.on('connection', ws => {
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) acks.push(data)
    })
    ws.send(deliver(1, 1, 'before the open packet'))
    ws.send(open())
    ws.send(deliver(2, 2, 'after it'))
  })
  const { port } = server.address() as AddressInfo
  const consumer = new Consumer(`http://127.0.0.1:${port}`, {
    token: 't',
    codec: 'msgpack',
    transports: ['websocket'],
  })
  t.teardown(() => consumer.close())
  const messages: string[] = []
  consumer.on('message', message => messages.push(message))
  await consumer.connect()
  await eventually(() => messages.length > 0, { what: 'a delivery' })
  await pause(200)
  t.deepEqual(messages, ['after it'])
  t.is(acks.length, 1, 'one ack, for the delivery after the open packet')
})

/**
 * A gateway whose handshake opens a session and whose polls answer with a
 * message packet that never ends (a server, or a proxy, streaming without
 * end): `written()` is how many bytes it got out before the client let go.
 */
async function endlessPollGateway(
  t: ExecutionContext,
): Promise<{ url: string; handshakes: () => number; written: () => number }> {
  let handshakes = 0
  let written = 0
  const chunk = Buffer.alloc(64 << 10, 'a')
  const server = createServer((req, res) => {
    req.resume()
    if (req.method === 'POST') return res.end('ok')
    if (!new URL(req.url ?? '/', 'http://x').searchParams.has('sid')) {
      handshakes++
      return res.end(open())
    }
    res.write('4')
    const more = (): void => {
      while (!res.destroyed && written < 1 << 30) {
        written += chunk.length
        if (!res.write(chunk)) return void res.once('drain', more)
      }
    }
    more()
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, handshakes: () => handshakes, written: () => written }
}

test('a poll answer that never ends: past 16 MiB the session ends with a PROTOCOL error, the read is dropped, and the consumer reconnects', async t => {
  const escaped = escapes(t)
  const gateway = await endlessPollGateway(t)
  const { consumer, states } = watchedConsumer(t, gateway.url)
  const errors: [number, string][] = []
  consumer.on('error', ({ code, message }) => errors.push([code, message]))
  await consumer.connect()
  const [, details] = await eventually(() => states.find(([state]) => state === 'reconnecting'), {
    what: 'the session to end',
  })
  t.regex(details.reason ?? '', /larger than maxReceiveBytes \(16777216\)/)
  t.deepEqual(
    errors.map(([code]) => code),
    [SDK_ERRORS.PROTOCOL],
  )
  await eventually(() => gateway.handshakes() >= 2, { what: 'a second handshake' })
  // What the server wrote past the bound sat in socket buffers, not in the consumer.
  t.true(gateway.written() < 64 << 20, `the server wrote ${gateway.written() >> 20} MiB`)
  t.deepEqual(escaped, [])
})

test('maxReceiveBytes bounds a poll answer by its Content-Length, before reading it, and a Node websocket message', async t => {
  const escaped = escapes(t)
  const big = `4${'a'.repeat(2 << 20)}`
  const gateway = await fakeGateway(t, count => ({ body: count === 1 ? `${open()}\x1e${big}` : open() }))
  const consumer = new Consumer(gateway.url, {
    token: 't',
    transports: ['polling'],
    maxReceiveBytes: 1 << 20,
  })
  t.teardown(() => consumer.close())
  const errors: string[] = []
  consumer.on('error', ({ code, message }) => errors.push(`${code} ${message}`))
  void consumer.connect().catch(() => {})
  await eventually(() => gateway.handshakes() >= 2, { what: 'a second handshake' })
  t.deepEqual(errors, [`${SDK_ERRORS.PROTOCOL} poll answer larger than maxReceiveBytes (1048576)`])

  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  t.teardown(() => {
    for (const client of server.clients) client.terminate()
    server.close()
  })
  server.on('connection', ws => {
    ws.send(open())
    ws.send(big)
  })
  const { port } = server.address() as AddressInfo
  const wsConsumer = new Consumer(`http://127.0.0.1:${port}`, {
    token: 't',
    transports: ['websocket'],
    maxReceiveBytes: 1 << 20,
  })
  t.teardown(() => wsConsumer.close())
  const wsErrors: string[] = []
  wsConsumer.on('error', ({ code, message }) => wsErrors.push(`${code} ${message}`))
  const reasons: string[] = []
  wsConsumer.on('state', (state, { reason }) => state === 'reconnecting' && reasons.push(reason ?? ''))
  await wsConsumer.connect()
  await eventually(() => reasons.length > 0, { what: 'the websocket session to end' })
  t.deepEqual(reasons.slice(0, 1), ['websocket message larger than maxReceiveBytes'])
  t.deepEqual(wsErrors.slice(0, 1), [`${SDK_ERRORS.PROTOCOL} websocket message larger than maxReceiveBytes`])
  t.deepEqual(escaped, [])
})

test('maxReceiveBytes that is not a whole number of bytes above 0 is refused when the consumer is made', t => {
  for (const maxReceiveBytes of [0, -1, Number.NaN, 1.5, Number.POSITIVE_INFINITY])
    t.throws(() => new Consumer('http://127.0.0.1:1', { token: 't', maxReceiveBytes }), {
      instanceOf: TypeError,
      message: /maxReceiveBytes must be a whole number of bytes above 0/,
    })
})

const NOTICE_NOW = '4{"jsonrpc":"2.0","method":"reconnect","params":[{"retryAfterMs":0}]}'

test('sessions that a reconnect notice ends at once: the consumer backs off instead of reconnecting at once for ever', async t => {
  const gateway = await fakeGateway(t, () => ({ body: [open(), NOTICE_NOW, '1'].join('\x1e') }))
  const { consumer } = watchedConsumer(t, gateway.url)
  await consumer.connect()
  await pause(1000)
  // The backoff from 100 ms: 50-100, 100-200, 200-400, 400-800 ms, so 5 handshakes at most in a second.
  t.true(gateway.handshakes() <= 6, `${gateway.handshakes()} handshakes in 1 s`)
})

test('a reconnect notice ending a session that lasted (a drain) does not lengthen the wait after the next ordinary failure', async t => {
  // The first session lasts 10.5 s (the backoff's reset: consumer.ts STABLE_SESSION_MS), then a drain's
  // notice ends it; the second handshake is answered 500 (an ordinary failure), the third opens.
  const gateway = await fakeGateway(t, count =>
    count === 1 ? { body: open() } : count === 2 ? { status: 500, body: 'oops' } : { body: open() },
  )
  const consumer = new Consumer(gateway.url, { token: 't', transports: ['polling'], reconnectMinMs: 1000 })
  t.teardown(() => consumer.close())
  const delays: number[] = []
  consumer.on(
    'state',
    (state, { retryInMs }) => state === 'reconnecting' && delays.push(retryInMs ?? Number.NaN),
  )
  await consumer.connect()
  await pause(10_500)
  gateway.push(`${NOTICE_NOW}\x1e1`)
  await eventually(() => delays.length >= 2, { what: 'the notice, then the failure', timeoutMs: 15_000 })
  t.true(delays[0]! <= 1, `the notice's reconnect waits ${delays[0]} ms`)
  // The backoff's first draw, in [reconnectMinMs / 2, reconnectMinMs]; one step on, it is in [1000, 2000].
  t.true(delays[1]! <= 1000, `the failure after it waits ${delays[1]} ms`)
})

test('reconnect delays a timer cannot wait are refused when the consumer is made, naming the option', t => {
  for (const [name, value] of [
    ['reconnectMinMs', Number.NaN],
    ['reconnectMinMs', 0],
    ['reconnectMaxMs', -5],
    ['reconnectMaxMs', 2 ** 31],
  ] as const)
    t.throws(() => new Consumer('http://127.0.0.1:1', { token: 't', [name]: value }), {
      instanceOf: TypeError,
      message: new RegExp(`^Consumer: ${name} must be `),
    })
})

/**
 * A polling gateway whose open packet says pingInterval 200, pingTimeout 200;
 * each poll is answered after 50 ms with `pings` pings; each POST's body goes
 * to `posts`, and the POST is answered after `postDelayMs`, or never.
 */
async function pingingGateway(
  t: ExecutionContext,
  pings: number,
  postDelayMs: number | undefined,
): Promise<{ url: string; posts: string[] }> {
  const posts: string[] = []
  const pingsBody = Array.from({ length: pings }, () => '2').join('\x1e')
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      if (req.method === 'POST') {
        posts.push(body)
        if (postDelayMs !== undefined) setTimeout(() => res.end('ok'), postDelayMs)
        return
      }
      if (!new URL(req.url ?? '/', 'http://x').searchParams.has('sid'))
        return res.end(open({ pingInterval: 200, pingTimeout: 200 }))
      setTimeout(() => res.end(pingsBody), 50)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, posts }
}

test('a POST the server never answers ends the polling session after pingInterval + pingTimeout, though its polls go on', async t => {
  const escaped = escapes(t)
  const gateway = await pingingGateway(t, 1, undefined)
  const { consumer, states } = watchedConsumer(t, gateway.url)
  await consumer.connect()
  // Before: the pong (and every ack after it) waited behind that POST for as long as the polls came,
  // and the session never ended. Both of its timers are pingInterval + pingTimeout: on a loaded
  // machine a poll answered 350 ms late ends it by the ping timeout first (a CI run saw it).
  const [, details] = await eventually(() => states.find(([state]) => state === 'reconnecting'), {
    what: 'the session ended',
  })
  t.true(
    details.reason === 'post not answered within 400 ms' || details.reason === 'ping timeout',
    String(details.reason),
  )
  t.deepEqual(escaped, [])
})

test('pings that pile up while a POST is out are answered by one pong, not one each', async t => {
  // 10,000 pings a poll, a POST answered after 300 ms: before, each POST after the first carried
  // thousands of pongs, and a POST held longer let them grow in memory without bound.
  const gateway = await pingingGateway(t, 10_000, 300)
  const { consumer } = watchedConsumer(t, gateway.url)
  await consumer.connect()
  await eventually(() => gateway.posts.length >= 3, { what: 'three POSTs' })
  t.deepEqual(
    gateway.posts.map(body => body.split('\x1e').length),
    gateway.posts.map(() => 1),
    'packets in each POST',
  )
  t.true(gateway.posts.every(body => body === '3'))
})

type Run = readonly [room: string, storedAtMs: number, seq: number, messages: readonly string[]]

/**
 * What a consumer (json, websocket) hands out when a fake gateway opens its
 * session and sends `deliveries`, one frame each: the messages, once every
 * delivery is acknowledged.
 */
async function handedOut(
  t: ExecutionContext,
  deliveries: readonly (readonly Run[])[],
  maxRoomsRemembered?: number,
): Promise<string[]> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await once(server, 'listening')
  t.teardown(() => {
    for (const client of server.clients) client.terminate()
    server.close()
  })
  let acks = 0
  server.on('connection', ws => {
    ws.on('message', (data: RawData) => {
      if (String(data).startsWith('4')) acks++
    })
    ws.send(open())
    for (const [id, runs] of deliveries.entries())
      ws.send(`4${JSON.stringify({ jsonrpc: '2.0', id, method: 'deliver', params: runs })}`)
  })
  const { port } = server.address() as AddressInfo
  const consumer = new Consumer(`http://127.0.0.1:${port}`, {
    token: 't',
    transports: ['websocket'],
    ...(maxRoomsRemembered === undefined ? {} : { maxRoomsRemembered }),
  })
  t.teardown(() => consumer.close())
  const messages: string[] = []
  consumer.on('message', message => messages.push(message))
  await consumer.connect()
  await eventually(() => acks === deliveries.length, { what: 'every delivery acknowledged' })
  return messages
}

/** One run of one message, `<room><seq>`, per room. */
const firstOf = (rooms: readonly string[]): Run[] => rooms.map(room => [room, 1, 1, [`${room}1`]])

test('maxRoomsRemembered: the room delivered to least recently is forgotten, and a batch of it sent again is handed out again', async t => {
  const messages = await handedOut(
    t,
    [
      firstOf(['a', 'b', 'c']),
      [['a', 1, 2, ['a2']]], // a is now the room delivered to last, b the least recently
      firstOf(['d']), // a fourth room: b is forgotten
      firstOf(['a', 'c', 'd']), // sent again: remembered, dropped
      firstOf(['b']), // sent again: forgotten, handed out again
    ],
    3,
  )
  t.deepEqual(messages, ['a1', 'b1', 'c1', 'a2', 'd1', 'b1'])
})

test('the consumer remembers its 10,000 (maxRoomsRemembered by default) most recently delivered rooms, not every room it heard of', async t => {
  const rooms = Array.from({ length: 10_100 }, (_, i) => `r${i}.`)
  const messages = await handedOut(t, [
    firstOf(rooms),
    firstOf(rooms.slice(100)), // the last 10,000 sent again: dropped
    firstOf(['r99.', 'r0.']), // older ones sent again: forgotten, handed out again
  ])
  t.is(messages.length, 10_102)
  t.deepEqual(messages.slice(-3), ['r10099.1', 'r99.1', 'r0.1'])
})

test('maxRoomsRemembered that is not a whole number above 0 is refused when the consumer is made', t => {
  for (const maxRoomsRemembered of [0, -1, Number.NaN, 1.5, Number.POSITIVE_INFINITY])
    t.throws(() => new Consumer('http://127.0.0.1:1', { token: 't', maxRoomsRemembered }), {
      instanceOf: TypeError,
      message: new RegExp(
        `^Consumer: maxRoomsRemembered must be a whole number from 1 to .*, got ${maxRoomsRemembered}$`,
      ),
    })
})
