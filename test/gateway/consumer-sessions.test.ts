/**
 * A consumer's sessions on the wire: two handshakes with one token at once
 * (the engine keeps the one that opens last, and so must the node), a
 * handshake abandoned on another node, and a batch the client answers with
 * an error.
 */
import { connect, type Socket } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

// CLIENT PAUSE holds every client of this file's Redis: no other test may run meanwhile.
test.serial(
  'two handshakes with one token at once: both open once the take is done, the one that opens last gets the messages, and its close releases the consumer',
  async t => {
    const broker = await startBroker(t, server.url)
    const userId = newUserId()
    const token = tokens.sign({ userId })
    // The first handshake's connect waits on Redis (consumer_connect is a write); the second one
    // joins it and opens no sooner (docs/consumer-protocol.md §3); both open then, the second last.
    await server.client().call('CLIENT', 'PAUSE', '700', 'WRITE')
    const startedAtMs = Date.now()
    const first = new RawConsumer(broker.ports.gateway, token)
    t.teardown(() => first.socket.close())
    await eventually(() => broker.gateway.counters.handshakes === 1)
    const second = new RawConsumer(broker.ports.gateway, token)
    t.teardown(() => second.socket.close())
    await second.opened()
    t.true(
      Date.now() - startedAtMs >= 600,
      `the second opened after ${Date.now() - startedAtMs} ms, before the take`,
    )
    await first.until(() => first.closed)
    t.true(first.isOpen, 'the first opened too, and was replaced')

    await broker.core.producerApi.publish([[`user${userId}`, 'hello']])
    await second.until(() => second.batches.length === 1)
    t.deepEqual(second.batches[0]!.params, ['hello'])
    second.ack(second.batches[0]!.id)

    second.socket.close()
    await eventually(() => broker.node.online === 0)
    t.deepEqual(await broker.core.producerApi.consumers(userId), { length: 0, android: 0, ios: 0, web: 0 })
  },
)

/**
 * A handshake sent whole on a raw socket, whose client goes away when the
 * returned function is called (resolves once the socket is closed).
 */
async function sendHandshake(
  port: number,
  token: string,
  transport: 'polling' | 'websocket',
): Promise<() => Promise<void>> {
  const socket: Socket = connect(port, '127.0.0.1')
  socket.on('error', () => {}) // a reset after the close is no news here
  await new Promise(resolve => socket.once('connect', resolve))
  const upgrade =
    transport === 'websocket'
      ? 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'
      : ''
  socket.write(
    `GET /websocket/?EIO=4&transport=${transport}&token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\n${upgrade}\r\n`,
  )
  return async () => {
    const closed = new Promise(resolve => socket.once('close', resolve))
    socket.destroy()
    await closed
  }
}

/** Nodes A and B on one Redis (one key prefix), and a consumer live on A. */
async function liveOnA(t: ExecutionContext) {
  const a = await startBroker(t, server.url)
  const b = await startBroker(t, server.url, { redisPrefix: a.config.redisPrefix })
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const live = new RawConsumer(a.ports.gateway, token)
  t.teardown(() => live.socket.close())
  await live.opened()
  return { a, b, userId, token, live }
}

// CLIENT PAUSE holds B's take on Redis, so that the client is surely gone before B would take the
// consumer over (unheld, B kicks within a millisecond: a client leaving later is too late).
test.serial(
  'a handshake abandoned on another node before its takeover leaves the live session alone; a completed one takes over',
  async t => {
    const { a, b, userId, token, live } = await liveOnA(t)
    const runs = ['polling', 'websocket', 'polling', 'websocket'] as const
    for (const [run, transport] of runs.entries()) {
      await server.client().call('CLIENT', 'PAUSE', '300', 'WRITE')
      await (
        await sendHandshake(b.ports.gateway, token, transport)
      )()
      await eventually(() => b.gateway.counters.handshakes === run + 1, { what: 'B to read the handshake' })
      await eventually(() => b.node.online === 0 && b.node.takingOver === 0, {
        what: 'B to let go of the abandoned handshake',
      })
      await a.core.producerApi.publish([[`user${userId}`, `m${run}`]])
      await live.until(() => live.batches.length === run + 1 || live.closed)
      t.false(live.closed, `run ${run}: an abandoned ${transport} handshake closed the live session`)
      t.deepEqual(live.batches[run]!.params, [`m${run}`])
      live.ack(live.batches[run]!.id)
    }
    t.is(a.node.counters.kicks, 0)

    const next = new RawConsumer(b.ports.gateway, token)
    t.teardown(() => next.socket.close())
    await next.opened()
    await live.until(() => live.closed)
    t.is(a.node.counters.kicks, 1)
    await a.core.producerApi.publish([[`user${userId}`, 'after']])
    await next.until(() => next.batches.length === 1)
    t.deepEqual(next.batches[0]!.params, ['after'], 'nothing acknowledged comes again')
  },
)

test.serial(
  'a handshake abandoned while another of the same consumer waits on the same connect: the other still takes it over',
  async t => {
    const { a, b, userId, token, live } = await liveOnA(t)
    await server.client().call('CLIENT', 'PAUSE', '300', 'WRITE')
    const leave = await sendHandshake(b.ports.gateway, token, 'polling')
    await eventually(() => b.gateway.counters.handshakes === 1, { what: 'B to read the handshake' })
    // Finds the consumer connecting on B, held by the pause: it opens on that connect's outbox, at once.
    const retry = new RawConsumer(b.ports.gateway, token)
    t.teardown(() => retry.socket.close())
    await retry.opened()
    await leave()
    await live.until(() => live.closed)
    await a.core.producerApi.publish([[`user${userId}`, 'hello']])
    await retry.until(() => retry.batches.length === 1)
    t.deepEqual(retry.batches[0]!.params, ['hello'])
    t.deepEqual(await a.core.producerApi.consumers(userId), { length: 1, android: 0, ios: 0, web: 1 })
  },
)

test('a batch answered with an error comes again under a new id, so a client that drops a repeated id delivers it', async t => {
  const broker = await startBroker(t, server.url)
  const userId = newUserId()
  const consumer = new RawConsumer(broker.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  await broker.core.producerApi.publish([
    [`user${userId}`, 'a'],
    [`user${userId}`, 'b'],
  ])
  await consumer.until(() => consumer.batches.length === 1)
  const failed = consumer.batches[0]!
  consumer.send({ jsonrpc: '2.0', id: failed.id, error: { code: -32000, message: 'busy' } })
  await consumer.until(() => consumer.batches.length === 2)
  const again = consumer.batches[1]!
  t.not(again.id, failed.id)
  t.deepEqual(again.params, ['a', 'b'])

  consumer.ack(again.id)
  await broker.core.producerApi.publish([[`user${userId}`, 'c']])
  await consumer.until(() => consumer.batches.length === 3)
  t.deepEqual(consumer.batches[2]!.params, ['c'], 'the acknowledged retry is not sent once more')
})
