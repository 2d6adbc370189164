/**
 * A consumer's sessions on the wire: two handshakes with one token at once
 * (the engine keeps the one that opens last, and so must the node), the
 * requests of a polling client whose session a newer one replaced, a
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
import { request, type RawResponse } from '../helpers/engineio-harness.js'

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

/** A raw Engine.IO 4 polling client of one token: its requests carry the sid and the token, as clients send them. */
class PollingClient {
  sid = ''
  constructor(
    readonly base: string,
    readonly token: string,
  ) {}

  async handshake(): Promise<void> {
    const response = await request(`${this.base}?EIO=4&transport=polling&token=${this.token}`)
    if (response.status !== 200 || !response.text.startsWith('0'))
      throw new Error(`handshake: ${response.status}`)
    this.sid = (JSON.parse(response.text.slice(1)) as { sid: string }).sid
  }

  #url(): string {
    return `${this.base}?EIO=4&transport=polling&token=${this.token}&sid=${encodeURIComponent(this.sid)}`
  }

  poll(): Promise<RawResponse> {
    return request(this.#url())
  }

  /** One payload of packets, v4 text (record separator between packets). */
  post(...packets: string[]): Promise<RawResponse> {
    return request(this.#url(), {
      method: 'POST',
      body: packets.join('\x1e'),
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
    })
  }
}

/** The publish batches of a v4 text payload. */
function batchesIn(body: string): { id: string; params: string[] }[] {
  return body
    .split('\x1e')
    .filter(packet => packet.startsWith('4'))
    .map(packet => JSON.parse(packet.slice(1)) as { id: string; method?: string; params: string[] })
    .filter(frame => frame.method === 'publish')
}

/**
 * Two polling clients of one token, A then B: B's handshake replaces A's session, and A's client,
 * not told yet, goes on with the sid it has, which is B's too (the sid is the consumer id). What
 * A sends must reach neither B's packets nor B's session (docs/consumer-protocol.md §3).
 */
test('polling: a client replaced by a newer handshake of its token between two GETs gets its close; its late GET and close packet leave the newer session live, which gets each message once', async t => {
  const broker = await startBroker(t, server.url)
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const base = `http://127.0.0.1:${broker.ports.gateway}/websocket/`
  const a = new PollingClient(base, token)
  const b = new PollingClient(base, token)
  await a.handshake()
  await b.handshake()
  t.is(b.sid, a.sid, 'the sid is the consumer id')
  // A message for the user meanwhile: B's to take, and only B's.
  await broker.core.producerApi.publish([[`user${userId}`, 'hello']])

  // What A's client sends before it knows: its next GET, and a payload with an echo request and a
  // close packet (its page closing, say). A held GET of A's would get the close packet at once
  // (test/gateway/engineio/polling.test.ts).
  t.like(await a.poll(), { status: 200, text: '1' }, "A's next GET gets the close packet")
  const aPost = await a.post('4{"jsonrpc":"2.0","id":"a1","method":"echo","params":["from A"]}', '1')
  t.like(aPost, { status: 400, text: '{"code":1,"message":"Session ID unknown"}' }, "A's POST")
  t.is(broker.gateway.engine.replacedClosesDropped, 1, 'counted for operators: a takeover race')

  const session = broker.gateway.engine.sessions.get(b.sid)
  t.true(session?.isOpen, "B's session is live")
  const got = await b.poll()
  t.is(got.status, 200)
  t.false(got.text.includes('from A'), "B never gets the answer to A's request")
  const batches = batchesIn(got.text)
  t.deepEqual(
    batches.map(batch => batch.params),
    [['hello']],
  )
  t.like(await b.post(`4{"jsonrpc":"2.0","id":"${batches[0]!.id}","result":"OK"}`), {
    status: 200,
    text: 'ok',
  })

  // Exactly once: the next poll gets the next message only.
  const next = b.poll()
  await broker.core.producerApi.publish([[`user${userId}`, 'again']])
  t.deepEqual(
    batchesIn((await next).text).map(batch => batch.params),
    [['again']],
  )
  t.is(broker.gateway.engine.sessions.get(b.sid), session, 'the same session of B all along')
  t.is(broker.node.online, 1)
})

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
