/**
 * The bench's lean consumer must be a faithful consumer: against a real node,
 * it gets exactly what snapper-consumer@1.3.6 gets (same messages, same
 * order), over EIO=4 and EIO=3, acking every batch (more than one batch in
 * flight would be refused, fewer acks would stall delivery), and an EIO=3
 * lean consumer keeps its session alive by pinging. With the SDK's codecs
 * and permessage-deflate it gets the same messages, and counts fewer bytes
 * when they are compressed.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { LeanConsumer, type ConsumerHost } from '../../bench/load/consumer.js'
import { Histogram } from '../../bench/lib/histogram.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { leanConsumer } from '../helpers/lean-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { eventually, holdsFor, pause } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

test('lean consumers (EIO 4 and 3) get what snapper-consumer gets: the same messages in the same order', async t => {
  // Short heartbeats: the EIO=3 lean consumer must ping to stay connected through the test.
  const broker = await startBroker(t, server.url, { pingIntervalMs: 300, pingTimeoutMs: 300 })
  const producer = await connectProducer(t, broker.ports.producer)
  const users = [newUserId(), newUserId(), newUserId()]
  const reference = connectConsumer('v3 websocket', broker.ports.gateway, tokens.sign({ userId: users[0]! }))
  t.teardown(() => reference.close())
  const lean4 = leanConsumer(broker.ports.gateway, tokens.sign({ userId: users[1]! }), 4)
  const lean3 = leanConsumer(broker.ports.gateway, tokens.sign({ userId: users[2]! }), 3)
  t.teardown(() => {
    lean4.close()
    lean3.close()
  })
  const ids = [await reference.opened()]
  await Promise.all([lean4.isOpen, lean3.isOpen])
  ids.push(lean4.consumer.sid, lean3.consumer.sid)
  for (const id of ids) t.is(await call(producer.joinRoom('shared', id)), 1)

  // Odd messages, one by one and in bursts bigger than a batch (50), to the shared room and to each user room.
  const odd = [
    'plain',
    '{"e":":change","d":{"_id":"1"}}',
    'ré任务😀\u2028',
    '"quoted"',
    '\\',
    '0',
    'false',
    'x'.repeat(5000),
  ]
  const expected: string[] = []
  const send = (message: string): void => {
    producer.sendMessage('shared', message)
    expected.push(message)
  }
  for (const message of odd) send(message)
  for (let i = 0; i < 300; i++) send(`burst ${i}`)
  await pause(700) // past a heartbeat interval and its timeout: the sessions must stay up
  for (let i = 0; i < 120; i++) send(`after ${i}`)
  for (const user of users) producer.sendMessage(`user${user}`, `own ${user}`)

  const total = expected.length + 1
  await reference.waitFor(total)
  await eventually(
    () => lean4.consumer.recorded!.length >= total && lean3.consumer.recorded!.length >= total,
    {
      what: 'every message at both lean consumers',
      timeoutMs: 20_000,
    },
  )
  await holdsFor(
    () => lean4.consumer.recorded!.length === total && lean3.consumer.recorded!.length === total,
    200,
    'nothing more, nothing twice',
  )
  const own = (messages: readonly string[]): string[] => messages.filter(m => m.startsWith('own '))
  const shared = (messages: readonly string[]): string[] => messages.filter(m => !m.startsWith('own '))
  t.deepEqual(shared(reference.messages), expected)
  t.deepEqual(shared(lean4.consumer.recorded!), shared(reference.messages))
  t.deepEqual(shared(lean3.consumer.recorded!), shared(reference.messages))
  t.deepEqual(own(lean4.consumer.recorded!), [`own ${users[1]}`])
  t.deepEqual(own(lean3.consumer.recorded!), [`own ${users[2]}`])
  t.deepEqual([lean4.closes, lean3.closes], [[], []], 'both sessions stayed up (the EIO=3 one by pinging)')
  t.true(lean4.consumer.isOpen && lean3.consumer.isOpen)
})

test('lean consumers with codec json and msgpack, with and without deflate, get the same messages', async t => {
  const broker = await startBroker(t, server.url, { wsCompression: true })
  const producer = await connectProducer(t, broker.ports.producer)
  const variants = [
    { codec: 'json', deflate: false },
    { codec: 'msgpack', deflate: false },
    { codec: 'json', deflate: true },
    { codec: 'msgpack', deflate: true },
  ] as const
  const leans = variants.map(variant =>
    leanConsumer(broker.ports.gateway, tokens.sign({ userId: newUserId() }), 4, variant),
  )
  t.teardown(() => leans.forEach(lean => lean.close()))
  await Promise.all(leans.map(lean => lean.isOpen))
  for (const lean of leans) t.is(await call(producer.joinRoom('codecs', lean.consumer.sid)), 1)
  const expected = Array.from(
    { length: 120 },
    (_, i) => `{"e":"change","d":{"n":${i},"text":"${'ab'.repeat(50)}"}}`,
  )
  for (const message of expected) producer.sendMessage('codecs', message)
  await eventually(() => leans.every(lean => lean.consumer.recorded!.length >= expected.length), {
    what: 'every message at every lean consumer',
  })
  for (const [i, lean] of leans.entries()) t.deepEqual(lean.consumer.recorded, expected, variants[i]!.codec)
  const bytes = leans.map(lean => lean.consumer.wireBytes)
  t.true(
    bytes[2]! < bytes[0]! / 2 && bytes[3]! < bytes[1]! / 2,
    `deflated reads fewer bytes: ${bytes.join(', ')}`,
  )
  t.true(bytes[1]! < bytes[0]!, `msgpack reads fewer bytes than json: ${bytes.join(', ')}`)
})

test('with a room, it counts by content: a message seen again is a duplicate, one after a later one is out of order', t => {
  const host: ConsumerHost = { latency: new Histogram(), opened: () => {}, closed: () => {} }
  const consumer = new LeanConsumer(
    { host: '127.0.0.1', port: 1, path: '/', protocol: 'snapper', eio: 4, room: 'r' },
    host,
  )
  const acks: string[] = []
  const ws = { send: (text: string) => acks.push(text) } as unknown as Parameters<LeanConsumer['wsText']>[0]
  const deliver = (id: number, seqs: number[]): void =>
    consumer.wsText(
      ws,
      `4${JSON.stringify({ jsonrpc: '2.0', id, method: 'publish', params: seqs.map(seq => `${seq} 0 x`) })}`,
    )
  deliver(1, [1, 2, 4])
  deliver(1, [1, 2, 4]) // the same batch again: dropped by its id, as snapper-consumer does
  deliver(2, [3, 4, 5, 100]) // 3 after 4: out of order; 4 again: a duplicate
  t.is(acks.length, 3, 'every batch acked')
  t.is(consumer.received, 7)
  t.is(consumer.dups, 1)
  t.is(consumer.outOfOrder, 1)
  t.is(consumer.missing([1, 2, 3, 4, 5, 6, 99, 100, 5000]), 3)
})
