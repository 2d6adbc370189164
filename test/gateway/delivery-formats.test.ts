/**
 * The delivery formats on the wire (`codec=` on the handshake), byte for byte
 * where it matters: without `codec` a session gets exactly the original's
 * frames; `codec=json` text frames with runs of [room, storedAtMs, seq,
 * messages]; `codec=msgpack` the same object as a binary frame, and binary
 * acks and replies. A draining node tells codec sessions when to come back.
 */
import test from 'ava'
import { unpack, pack } from 'msgpackr'
import { WebSocket } from 'ws'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { makeBatch } from '../../src/broker/batch.js'
import { jsonFrame, legacyFrame, msgpackFrame } from '../../src/gateway/delivery.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { docVectors } from '../helpers/doc-vectors.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

/** A raw Engine.IO 4 websocket that answers pings and keeps every message: text as sent, binary as bytes. */
class WireConsumer {
  readonly messages: (string | Buffer)[] = []
  readonly socket: WebSocket
  /** The Engine.IO open packet came (the websocket itself opens before the session is ready). */
  isOpen = false
  closed = false
  #wake = (): void => {}

  constructor(port: number, token: string, codec?: string) {
    const query = new URLSearchParams({ EIO: '4', transport: 'websocket', token, ...(codec && { codec }) })
    this.socket = new WebSocket(`ws://127.0.0.1:${port}/websocket/?${query}`)
    this.socket.on('message', (data: Buffer, isBinary) => {
      if (!isBinary && String(data).startsWith('0')) this.isOpen = true
      else if (!isBinary && String(data) === '2') this.socket.send('3')
      else if (isBinary) this.messages.push(data)
      else if (String(data).startsWith('4')) this.messages.push(String(data).slice(1))
      this.#wake()
    })
    this.socket.on('close', () => {
      this.closed = true
      this.#wake()
    })
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject)
      this.until(() => this.isOpen || this.closed).then(
        () => (this.isOpen ? resolve() : reject(new Error('closed before its open packet'))),
        reject,
      )
    })
  }

  until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('condition not met in time')), timeoutMs)
      this.#wake = () => {
        if (!check()) return
        clearTimeout(timer)
        resolve()
      }
      this.#wake()
    })
  }
}

const FRAME_ID = /"id":"([^"]+)"/

test('no codec: the original frame, byte for byte', async t => {
  const broker = await startBroker(t, server.url)
  const producer = await connectProducer(t, broker.ports.producer)
  const userId = newUserId()
  const consumer = new WireConsumer(broker.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  producer.sendMessage(`user${userId}`, 'a"b')
  await consumer.until(() => consumer.messages.length === 1)
  const frame = consumer.messages[0] as string
  const id = FRAME_ID.exec(frame)?.[1]
  t.is(frame, `{"jsonrpc":"2.0","id":"${id}","method":"publish","params":["a\\"b"]}`)
})

test('codec=json: a run of [room, storedAtMs, seq, messages]; the ack is the usual one', async t => {
  const broker = await startBroker(t, server.url)
  const producer = await connectProducer(t, broker.ports.producer)
  const userId = newUserId()
  const token = tokens.sign({ userId })
  // Joined while offline: the messages wait in the log.
  t.is(await call(producer.joinRoom('alpha', consumerIdOf({ userId, exp: jwtExp(token) }))), 1)
  await call(
    producer.request('publish', [
      ['alpha', 'a1'],
      ['alpha', 'a"2'],
    ]),
  )
  const startedAt = Date.now()
  const consumer = new WireConsumer(broker.ports.gateway, token, 'json')
  t.teardown(() => consumer.socket.close())
  await consumer.until(() => consumer.messages.length === 1)
  const frame = consumer.messages[0] as string
  const match =
    /^\{"jsonrpc":"2\.0","id":"([^"]+)","method":"deliver","params":\[\["alpha",(\d+),1,\["a1","a\\"2"\]\]\]\}$/.exec(
      frame,
    )
  t.truthy(match, frame)
  t.true(Math.abs(Number(match?.[2]) - startedAt) < 60_000)
  consumer.socket.send(`4{"jsonrpc":"2.0","id":"${match?.[1]}","result":"OK"}`)
  producer.sendMessage('alpha', 'a3')
  await consumer.until(() => consumer.messages.length === 2)
  t.regex(consumer.messages[1] as string, /"params":\[\["alpha",\d+,3,\["a3"\]\]\]\}$/)
})

// docs/consumer-protocol.md §12: a batch id, its entries, the frame without codec, the frame with codec=json.
for (const [title, id, entries, legacy, json] of docVectors('consumer-protocol', 'delivery-frames')) {
  test(`${String(title)}: the frame in each format, made once per batch`, t => {
    const batch = makeBatch(id as string, entries as Parameters<typeof makeBatch>[1])
    t.is(legacyFrame(batch).packet, `4${JSON.stringify(legacy)}`)
    const frame = jsonFrame(batch)
    t.is(frame.packet, `4${JSON.stringify(json)}`)
    t.is(jsonFrame(batch), frame, 'made once per batch')
    t.deepEqual(unpack(msgpackFrame(batch)), json, 'msgpack: the same object')
    t.is(msgpackFrame(batch), msgpackFrame(batch))
  })
}

test('codec=msgpack: binary deliveries, binary acks, binary echo replies', async t => {
  const broker = await startBroker(t, server.url)
  const producer = await connectProducer(t, broker.ports.producer)
  const userId = newUserId()
  const consumer = new WireConsumer(broker.ports.gateway, tokens.sign({ userId }), 'msgpack')
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  producer.sendMessage(`user${userId}`, '{"x":"ü"}').sendMessage(`user${userId}`, 'second')
  await consumer.until(() => consumer.messages.length >= 1)
  t.true(Buffer.isBuffer(consumer.messages[0]))
  const first = unpack(consumer.messages[0] as Buffer) as { id: string; method: string; params: unknown[][] }
  t.is(first.method, 'deliver')
  const delivered = first.params.flatMap(run => run[3] as string[])
  t.deepEqual(first.params[0]?.slice(0, 1), [`user${userId}`])
  // Unacknowledged, nothing more comes; a binary ack lets the next batch go.
  consumer.socket.send(pack({ jsonrpc: '2.0', id: first.id, result: 'OK' }))
  if (delivered.length < 2) await consumer.until(() => consumer.messages.length === 2)
  const all = consumer.messages.flatMap(m => (unpack(m as Buffer) as { params: unknown[][] }).params)
  t.deepEqual(
    all.flatMap(run => run[3] as string[]),
    ['{"x":"ü"}', 'second'],
  )
  const count = consumer.messages.length
  consumer.socket.send(pack({ jsonrpc: '2.0', id: 7, method: 'echo', params: ['ping'] }))
  await consumer.until(() => consumer.messages.length === count + 1)
  t.deepEqual(unpack(consumer.messages[count] as Buffer), { jsonrpc: '2.0', id: 7, result: ['ping'] })
})

test('a draining node tells codec sessions to come back at once; old clients get no notice', async t => {
  const broker = await startBroker(t, server.url)
  const json = new WireConsumer(broker.ports.gateway, tokens.sign({ userId: newUserId() }), 'json')
  const packed = new WireConsumer(broker.ports.gateway, tokens.sign({ userId: newUserId() }), 'msgpack')
  const legacy = new WireConsumer(broker.ports.gateway, tokens.sign({ userId: newUserId() }))
  await Promise.all([json.opened(), packed.opened(), legacy.opened()])
  await broker.stop()
  await Promise.all([json, packed, legacy].map(consumer => consumer.until(() => consumer.closed)))
  const notice = { jsonrpc: '2.0', method: 'reconnect', params: [{ retryAfterMs: 0 }] }
  t.deepEqual(json.messages, [JSON.stringify(notice)])
  t.deepEqual(
    packed.messages.map(m => unpack(m as Buffer) as unknown),
    [notice],
  )
  t.deepEqual(legacy.messages, [])
})

function jwtExp(token: string): number {
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }
  return payload.exp
}
