/**
 * The producer listener's limits by bytes and by peer, on the wire: the
 * first frame of a connection (before auth), connections that have not
 * authenticated yet (per client address and in all), all connections, and
 * the rooms one publish may name. Peers are told apart by their address:
 * Linux routes all of 127.0.0.0/8 to loopback, so 127.0.0.2 is another client.
 */
import test, { type ExecutionContext } from 'ava'
import { eventually } from '../helpers/eventually.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { AUTH_FRAME, AUTH_OK, call, error, frame, request, startListener, type RawClient } from './setup.js'

let server: RedisServer

test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const FRAME_TOO_LARGE = error(null, 'Frame too large', -32600, { code: 'FRAME_TOO_LARGE' })
const TOO_MANY_CONNECTIONS = error(null, 'Too many connections, retry later', -32006, {
  code: 'TOO_MANY_CONNECTIONS',
  temporary: true,
})

/** Answered TOO_MANY_CONNECTIONS at once, then closed. */
async function assertTurnedAway(t: ExecutionContext, client: RawClient): Promise<void> {
  t.is(await client.expect(TOO_MANY_CONNECTIONS), TOO_MANY_CONNECTIONS)
  t.is(await client.ended(), '')
}

test('the first frame may be at most maxAuthFrameBytes: a larger one is refused from its header alone', async t => {
  const h = await startListener(t, server, { maxAuthFrameBytes: 1024 })
  const stranger = await h.raw()
  stranger.send('$1025\r\n')
  t.is(await stranger.expect(FRAME_TOO_LARGE), FRAME_TOO_LARGE)
  t.is(await stranger.ended(), '')
  // After auth, frames up to maxFrameBytes are served again.
  const client = await h.rawAuthed()
  const big = 'x'.repeat(100_000)
  client.send(request('big:1', 'echo', [big]))
  const reply = frame(JSON.stringify({ jsonrpc: '2.0', id: 'big:1', result: [big] }))
  t.is(await client.expect(reply), reply)
})

test('strangers announcing 1 MB frames: each refused at once, the broker holds no more than an auth frame each', async t => {
  const h = await startListener(t, server, { maxUnauthenticatedProducersPerAddress: 1000 })
  const strangers = await Promise.all(Array.from({ length: 200 }, () => h.raw()))
  // The start of a 1 MB frame each: before the limit, the broker buffered up to all of it (113 MB for 200 halves).
  const start = Buffer.concat([Buffer.from('$1000000\r\n'), Buffer.alloc(10_000, 'a')])
  for (const stranger of strangers) stranger.send(start)
  for (const stranger of strangers) t.is(await stranger.expect(FRAME_TOO_LARGE), FRAME_TOO_LARGE)
  await eventually(() => h.listener.connections === 0, { what: 'every stranger to be closed' })

  // Half of an allowed auth frame each: held until the auth timeout, and no more than that.
  const slow = await Promise.all(Array.from({ length: 200 }, () => h.raw()))
  for (const stranger of slow) stranger.send('$8000\r\n' + 'a'.repeat(4000))
  await eventually(() => h.listener.stats.bufferedBytes >= 200 * 4000, { what: 'the half frames to arrive' })
  t.true(h.listener.stats.bufferedBytes <= 200 * 8192, `${h.listener.stats.bufferedBytes} bytes held`)
  t.is(h.listener.stats.unauthenticated, 200)
})

test('unauthenticated connections per address: the next one from that address is turned away, others are not', async t => {
  const h = await startListener(t, server, { maxUnauthenticatedProducersPerAddress: 2 })
  const first = await h.raw('127.0.0.2')
  await h.raw('127.0.0.2')
  await eventually(() => h.listener.stats.unauthenticated === 2, { what: 'both to be accepted' })
  await assertTurnedAway(t, await h.raw('127.0.0.2'))
  t.is(h.listener.stats.errors.TOO_MANY_CONNECTIONS, 1)

  // Another address, and an authenticated producer from the same one, are served.
  const other = await h.raw('127.0.0.3')
  other.send(AUTH_FRAME)
  t.is(await other.expect(AUTH_OK), AUTH_OK)
  // A stranger that authenticates gives its place back.
  first.send(AUTH_FRAME)
  t.is(await first.expect(AUTH_OK), AUTH_OK)
  const again = await h.raw('127.0.0.2')
  again.send(AUTH_FRAME)
  t.is(await again.expect(AUTH_OK), AUTH_OK)
  t.is(h.listener.stats.unauthenticated, 1)
})

test('unauthenticated connections in all: past the limit every address is turned away; the auth timeout frees the places', async t => {
  const h = await startListener(t, server, {
    maxUnauthenticatedProducers: 3,
    producerAuthTimeoutMs: 1000,
  })
  const authed = await h.rawAuthed() // holds no place
  for (const address of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) await h.raw(address)
  await eventually(() => h.listener.stats.unauthenticated === 3, { what: 'three strangers to be accepted' })
  await assertTurnedAway(t, await h.raw('127.0.0.5'))
  t.truthy(await authed.echo('still:1'), 'an authenticated producer is unaffected')

  await eventually(() => h.listener.stats.unauthenticated === 0, {
    what: 'the auth timeout to close the strangers',
  })
  const later = await h.raw('127.0.0.5')
  later.send(AUTH_FRAME)
  t.is(await later.expect(AUTH_OK), AUTH_OK)
})

test('maxProducerConnections: a further connection is turned away at once; the others go on', async t => {
  const h = await startListener(t, server, { maxProducerConnections: 2 })
  const first = await h.rawAuthed()
  const second = await h.rawAuthed()
  await assertTurnedAway(t, await h.raw())
  t.is(h.listener.stats.refused, 1)
  t.truthy(await first.echo('one:1'))
  t.truthy(await second.echo('two:1'))
  first.socket.destroy()
  await eventually(() => h.listener.connections === 1, { what: 'the first connection to go' })
  const fourth = await h.rawAuthed()
  t.truthy(await fourth.echo('four:1'))
})

test('a publish naming more than maxRoomsPerPublish rooms is refused whole; one within it is stored', async t => {
  const h = await startListener(t, server, { maxRoomsPerPublish: 3 })
  const client = await h.rawAuthed()
  const four = [
    ['a', '1'],
    ['b', '2'],
    ['c', '3'],
    ['d', '4'],
  ]
  client.send(request('r:1', 'publish', four))
  const refused = error('r:1', 'Too many rooms in one publish', -32005, { code: 'TOO_MANY_ROOMS' })
  t.is(await client.expect(refused), refused)
  t.deepEqual(await h.roomLog('a'), [], 'nothing of it stored')

  // Three rooms, however many messages, and the connection goes on.
  client.send(request('r:2', 'publish', [...four.slice(0, 3), ['a', '5'], ['b', '6']]))
  const stored = frame('{"jsonrpc":"2.0","id":"r:2","result":5}')
  t.is(await client.expect(stored), stored)
  t.deepEqual(
    (await h.roomLog('a')).map(entry => entry.message),
    ['1', '5'],
  )
  t.is(h.listener.stats.errors.TOO_MANY_ROOMS, 1)
})

test('snapper-producer turned away for too many strangers from its address connects once a place is free', async t => {
  const h = await startListener(t, server, { maxUnauthenticatedProducersPerAddress: 1 })
  const stranger = await h.raw()
  await eventually(() => h.listener.stats.unauthenticated === 1, { what: 'the stranger to hold the place' })
  const producer = await h.producer({ wait: false })
  let isConnected = false
  producer.once('connect', () => (isConnected = true))
  await eventually(() => (h.listener.stats.errors.TOO_MANY_CONNECTIONS ?? 0) >= 1, {
    what: 'the producer to be turned away',
  })
  t.false(isConnected)
  stranger.socket.destroy()
  await eventually(() => isConnected, { what: 'the producer to reconnect on its own' })
  t.deepEqual(await call(producer.request('echo', ['in'])), ['in'])
})
