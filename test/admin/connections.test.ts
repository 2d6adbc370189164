/**
 * The admin port against strangers who hold connections open: its process
 * (the primary) also takes the producer connections, so silent connections
 * must neither pile up nor stay.
 */
import { get } from 'node:http'
import { connect, type Socket } from 'node:net'
import test from 'ava'
import { pino } from 'pino'
import { scrape } from '../../src/metrics/index.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'
import { sample, startAdminApp } from './harness.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

interface Held {
  readonly socket: Socket
  /** What the server wrote before it closed the connection. */
  readonly answer: Promise<string>
  closedAt?: number
}

function hold(base: string, firstBytes = '', localAddress?: string): Promise<Held> {
  const { hostname, port } = new URL(base)
  const socket = connect({ port: Number(port), host: hostname, localAddress })
  let received = ''
  socket.on('data', chunk => (received += chunk.toString('latin1')))
  socket.on('error', () => {}) // a reset counts as closed
  const held: Held = {
    socket,
    answer: new Promise(resolve =>
      socket.once('close', () => {
        held.closedAt = Date.now()
        resolve(received)
      }),
    ),
  }
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      if (firstBytes) socket.write(firstBytes)
      resolve(held)
    })
    socket.once('error', reject)
  })
}

test('silent and trickling connections get 408 and are closed after adminRequestTimeoutMs; past adminMaxConnections, closed at once', async t => {
  const h = await startAdminApp(t, server.url, {
    overrides: { adminMaxConnections: 20, adminRequestTimeoutMs: 1000 },
  })
  const opened = Date.now()
  const silent = await Promise.all(Array.from({ length: 10 }, () => hold(h.base)))
  const trickling = await Promise.all(
    Array.from({ length: 10 }, () => hold(h.base, 'GET /healthz HTTP/1.1\r\nHost: x\r\n')),
  )
  t.teardown(() => [...silent, ...trickling].forEach(held => held.socket.destroy()))
  const timer = setInterval(() => trickling.forEach(held => held.socket.write('X-Slow: 1\r\n')), 200)
  t.teardown(() => clearInterval(timer))

  // The 21st: closed without an answer, while the 20 are held.
  const extra = await hold(h.base, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
  t.is(await extra.answer, '')
  t.true(extra.closedAt! - opened < 900, 'at once, not after the timeout')

  for (const held of [...silent, ...trickling]) {
    const answer = await held.answer
    t.regex(answer, /^HTTP\/1\.1 408 /)
    t.true(held.closedAt! - opened < 1000 + 1500, `closed ${held.closedAt! - opened} ms after opening`)
    t.true(held.closedAt! - opened >= 900, 'not before the timeout')
  }
  // The port serves again.
  await eventually(async () => (await fetch(`${h.base}/healthz`)).status === 200, { timeoutMs: 2000 })
})

/** GET `url` from another client address (a loopback one: 127.0.0.2), its status and body. */
function getFrom(localAddress: string, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { localAddress, agent: false }, res => {
      let body = ''
      res.on('data', chunk => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

test('one address holds at most adminMaxConnectionsPerAddress: past it 503 TOO_MANY_CONNECTIONS at once, and another address is still served', async t => {
  const h = await startAdminApp(t, server.url, {
    overrides: { adminMaxConnections: 20, adminMaxConnectionsPerAddress: 5, adminRequestTimeoutMs: 5000 },
  })
  // A stranger at 127.0.0.1 opens as many silent connections as the port holds.
  const opened = Date.now()
  const attempts = await Promise.all(Array.from({ length: 20 }, () => hold(h.base)))
  t.teardown(() => attempts.forEach(held => held.socket.destroy()))
  const refused = attempts.slice(5)
  for (const held of refused) {
    const answer = await held.answer
    t.regex(answer, /^HTTP\/1\.1 503 /)
    t.regex(answer, /\r\nRetry-After: 1\r\n/)
    t.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), {
      error: {
        code: -32006,
        message: 'Too many connections, retry later',
        data: {
          code: 'TOO_MANY_CONNECTIONS',
          temporary: true,
          reason: 'too many connections from your address',
        },
      },
    })
    t.true(held.closedAt! - opened < 2000, 'at once, not after the request timeout')
  }
  t.true(
    attempts.slice(0, 5).every(held => held.closedAt === undefined),
    'its first 5 are held',
  )

  // Before: the 20 were all held, and anyone else's connection was closed unanswered.
  t.deepEqual(await getFrom('127.0.0.2', `${h.base}/healthz`), { status: 200, body: '{"status":"ok"}' })
  // Its places come back as its connections close.
  attempts.forEach(held => held.socket.destroy())
  await eventually(async () => (await fetch(`${h.base}/healthz`)).status === 200, { timeoutMs: 2000 })
})

test('adminMaxConnectionsPerAddress 0: no limit per address', async t => {
  const h = await startAdminApp(t, server.url, {
    overrides: { adminMaxConnections: 20, adminMaxConnectionsPerAddress: 0, adminRequestTimeoutMs: 5000 },
  })
  const held = await Promise.all(Array.from({ length: 10 }, () => hold(h.base)))
  t.teardown(() => held.forEach(one => one.socket.destroy()))
  t.is((await fetch(`${h.base}/healthz`)).status, 200)
})

test('refusals of adminMaxConnectionsPerAddress and adminMaxConnections are counted in snapper_admin_refused_total and logged', async t => {
  const lines: { level: number; msg: string; limit?: string; remote?: string }[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const h = await startAdminApp(t, server.url, {
    overrides: { adminMaxConnections: 4, adminMaxConnectionsPerAddress: 2, adminRequestTimeoutMs: 5000 },
    logger,
  })
  const attempts = await Promise.all(Array.from({ length: 3 }, () => hold(h.base)))
  t.teardown(() => attempts.forEach(held => held.socket.destroy()))
  t.regex(await attempts[2]!.answer, /^HTTP\/1\.1 503 /)
  // Two more from elsewhere fill the port; a fifth connection is closed unanswered.
  const others = await Promise.all(['127.0.0.2', '127.0.0.3'].map(address => hold(h.base, '', address)))
  t.teardown(() => others.forEach(held => held.socket.destroy()))
  const dropped = await hold(h.base, '', '127.0.0.4')
  t.is(await dropped.answer, '')

  const text = (await scrape(h.registry)).body
  t.is(sample(text, 'snapper_admin_refused_total{reason="adminMaxConnectionsPerAddress"}'), 1)
  t.is(sample(text, 'snapper_admin_refused_total{reason="adminMaxConnections"}'), 1)
  t.like(
    lines.filter(line => line.msg === 'admin connection refused: too many'),
    [
      { level: 40, limit: 'adminMaxConnectionsPerAddress', remote: '127.0.0.1' },
      { level: 40, limit: 'adminMaxConnections', remote: '127.0.0.4' },
    ],
  )
})
