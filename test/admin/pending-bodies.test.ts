/**
 * adminMaxPendingBodyBytes: the bytes of admin request bodies read or parsed
 * at once, across requests. Bodies are held open by raw sockets that send all
 * but their last byte, as a trickling producer would.
 */
import { once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'
import test from 'ava'
import { pino } from 'pino'
import { scrape } from '../../src/metrics/index.js'
import { eventually } from '../helpers/eventually.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, errorBody, sample, startAdminApp, TOKENS, type AdminHarness } from './harness.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

/** Each body 64 KiB at most, 128 KiB of them at once: two bodies of 60 KB leave 11 KB. */
const LIMITS = { adminMaxBodyBytes: 64 * 1024, adminMaxPendingBodyBytes: 128 * 1024 }
const bodyOf = (room: string): string => JSON.stringify({ room, message: 'x'.repeat(60_000) })
const BODIES_PENDING = errorBody(-32010, 'Too many request bodies in progress, retry', 'BODIES_PENDING', {
  temporary: true,
  reason: 'request bodies in progress at their limit',
})

interface Held {
  readonly socket: Socket
  /** What the server wrote, once it closed the connection. */
  readonly answer: Promise<string>
  /** The server's response to it: closes when the request ends, however. */
  readonly response: ServerResponse
  /** Sends the body's last byte. */
  finish(): void
}

/**
 * A publish whose body arrives but for its last byte; resolves once the app
 * has it (its 'request' event: the app has run it up to its first wait, the
 * body's share taken).
 */
async function holdPublish(h: AdminHarness, room: string, sendBytes?: number): Promise<Held> {
  const body = Buffer.from(bodyOf(room))
  const request = once(h.server, 'request') as Promise<[IncomingMessage, ServerResponse]>
  const { port } = new URL(h.base)
  const socket = connect({ port: Number(port), host: '127.0.0.1' })
  let received = ''
  socket.on('data', chunk => (received += chunk.toString('latin1')))
  socket.on('error', () => {}) // a reset counts as closed
  const answer = new Promise<string>(resolve => socket.once('close', () => resolve(received)))
  socket.write(
    `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.producer}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
  )
  socket.write(body.subarray(0, sendBytes ?? body.length - 1))
  const [, response] = await request
  return { socket, answer, response, finish: () => socket.write(body.subarray(body.length - 1)) }
}

const statusOf = (answer: string): string => answer.slice(0, answer.indexOf('\r\n'))

async function refusedCount(h: AdminHarness): Promise<number | undefined> {
  return sample(
    (await scrape(h.registry)).body,
    'snapper_admin_refused_total{reason="adminMaxPendingBodyBytes"}',
  )
}

function recordingLogger(): { logger: pino.Logger; lines: { level: number; msg: string; limit?: string }[] } {
  const lines: { level: number; msg: string; limit?: string }[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  return { logger, lines }
}

test('bodies past adminMaxPendingBodyBytes: 503 BODIES_PENDING with Retry-After, nothing stored, counted and logged; one within it is stored, and so are the ones held', async t => {
  const { logger, lines } = recordingLogger()
  const h = await startAdminApp(t, server.url, { overrides: LIMITS, logger })
  const held = [await holdPublish(h, 'a'), await holdPublish(h, 'b')]
  t.teardown(() => held.forEach(one => one.socket.destroy()))
  const pendingBytes = async (): Promise<number | undefined> =>
    sample((await scrape(h.registry)).body, 'snapper_admin_pending_body_bytes')
  t.is(
    await pendingBytes(),
    2 * Buffer.byteLength(bodyOf('a')),
    'the two held bodies, by their Content-Length',
  )

  const refused = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, raw: bodyOf('c') })
  t.is(refused.status, 503)
  t.deepEqual(refused.json, BODIES_PENDING)
  t.is(refused.headers.get('retry-after'), '1')
  const small = await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    body: { room: 's', message: 'm' },
  })
  t.deepEqual(small.json, { result: 1 })
  t.deepEqual(await h.roomLog('s'), ['m'])

  // What was accepted is not lost: the held bodies complete and are stored.
  held.forEach(one => one.finish())
  t.deepEqual((await Promise.all(held.map(one => one.answer))).map(statusOf), [
    'HTTP/1.1 200 OK',
    'HTTP/1.1 200 OK',
  ])
  t.is((await h.roomLog('a')).length, 1)
  t.is((await h.roomLog('b')).length, 1)
  t.deepEqual(await h.roomLog('c'), [])

  // Their bytes came back with their answers: the refused one is served now.
  const again = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, raw: bodyOf('c') })
  t.deepEqual(again.json, { result: 1 })
  t.is(await refusedCount(h), 1)
  // Given back as each response closes, which Node reports just after the answer is written.
  await eventually(async () => (await pendingBytes()) === 0, { what: 'every body given back' })
  t.like(
    lines.filter(line => line.msg === 'admin request refused: too many request bodies in progress'),
    [{ level: 40, limit: 'adminMaxPendingBodyBytes' }],
  )
})

test('the bytes of an aborted request and of a timed-out one (408) come back', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { ...LIMITS, adminRequestTimeoutMs: 1000 } })
  const aborted = await holdPublish(h, 'a', 1000)
  const timedOut = await holdPublish(h, 'b', 1000)
  t.teardown(() => timedOut.socket.destroy())
  t.is((await call(`${h.base}/v1/publish`, { token: TOKENS.producer, raw: bodyOf('c') })).status, 503)

  aborted.socket.destroy()
  await once(aborted.response, 'close')
  t.regex(await timedOut.answer, /^HTTP\/1\.1 408 /)
  if (!timedOut.response.closed) await once(timedOut.response, 'close')

  const served = await call(`${h.base}/v1/publish`, { token: TOKENS.producer, raw: bodyOf('c') })
  t.deepEqual(served.json, { result: 1 })
  t.deepEqual(await h.roomLog('a'), [])
  t.deepEqual(await h.roomLog('b'), [])
})

/** A chunked publish sent whole over a raw socket; what the server answered before it closed. */
async function chunkedPublish(h: AdminHarness, chunks: readonly string[]): Promise<string> {
  const { port } = new URL(h.base)
  const socket = connect({ port: Number(port), host: '127.0.0.1' })
  let received = ''
  socket.on('data', chunk => (received += chunk.toString('latin1')))
  socket.on('error', () => {}) // a reset after the answer counts as closed
  const closed = once(socket, 'close')
  socket.write(
    `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.producer}\r\n` +
      `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
  )
  for (const chunk of chunks) socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`)
  socket.write('0\r\n\r\n')
  await closed
  return received
}

test('a chunked body counts as adminMaxBodyBytes, the most it may be: stored when that fits, else 503 BODIES_PENDING unread', async t => {
  const h = await startAdminApp(t, server.url, { overrides: LIMITS })
  const small = await chunkedPublish(h, ['{"room":"s",', '"message":"m"}'])
  t.is(statusOf(small), 'HTTP/1.1 200 OK')
  t.deepEqual(await h.roomLog('s'), ['m'])

  // Two held bodies of 60 KB leave 11 KB: less than the 64 KiB a chunked body takes.
  const held = [await holdPublish(h, 'a'), await holdPublish(h, 'b')]
  t.teardown(() => held.forEach(one => one.socket.destroy()))
  const refused = await chunkedPublish(h, ['{"room":"c",', '"message":"m"}'])
  t.is(statusOf(refused), 'HTTP/1.1 503 Service Unavailable')
  t.regex(refused, /\r\nRetry-After: 1\r\n/i)
  t.deepEqual(JSON.parse(refused.slice(refused.indexOf('\r\n\r\n') + 4)), BODIES_PENDING)
  t.deepEqual(await h.roomLog('c'), [])

  held.forEach(one => one.finish())
  await Promise.all(held.map(one => one.answer))
  t.is(statusOf(await chunkedPublish(h, ['{"room":"c",', '"message":"m"}'])), 'HTTP/1.1 200 OK')
  t.deepEqual(await h.roomLog('c'), ['m'])
  t.is(await refusedCount(h), 1)
})
