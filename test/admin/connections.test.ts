/**
 * The admin port against strangers who hold connections open: its process
 * (the primary) also takes the producer connections, so silent connections
 * must neither pile up nor stay.
 */
import { connect, type Socket } from 'node:net'
import test from 'ava'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'
import { startAdminApp } from './harness.js'

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

function hold(base: string, firstBytes = ''): Promise<Held> {
  const { hostname, port } = new URL(base)
  const socket = connect(Number(port), hostname)
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
