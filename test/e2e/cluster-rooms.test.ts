/**
 * The original's Redis Cluster scenario, on a real cluster (3 masters, 3
 * replicas): 2,000 messages over 200 rooms, in bursts of random size, to 50
 * consumers that are each in all 200 rooms, spread over two broker nodes
 * (the producer talks to one; joins reach the other over its control channel).
 * Every consumer gets every message once, in order within each room.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { eventually, holdsFor } from '../helpers/eventually.js'
import { seededRandom } from '../helpers/seeded-random.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster()
})
test.after.always(() => cluster?.stop())

const tokens = new Tokens([TEST_SECRET])

/** A seeded generator of integers below `below`, so a failing run can be replayed (its seed is logged). */
function random(seed: number): (below: number) => number {
  const next = seededRandom(seed)
  return below => Math.floor(next() * below)
}

test('2,000 messages over 200 rooms reach 50 consumers in every room, in order per room', async t => {
  const redis = cluster!
  const a = await startBroker(t, redis.target)
  const b = await startBroker(t, redis.target, { redisPrefix: a.config.redisPrefix })
  const producer = await connectProducer(t, a.ports.producer)
  const consumers: TestConsumer[] = Array.from({ length: 50 }, (_, i) =>
    connectConsumer(
      i % 2 === 0 ? 'v4 websocket' : 'v3 websocket',
      (i % 4 < 2 ? a : b).ports.gateway,
      tokens.sign({ userId: newUserId() }),
    ),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  const rooms = Array.from({ length: 200 }, (_, i) => `room-${i}`)
  const ids = await Promise.all(consumers.map(consumer => consumer.opened()))
  await Promise.all(ids.flatMap(id => rooms.map(room => call(producer.joinRoom(room, id)))))

  const seed = Date.now()
  t.log(`seed ${seed}`)
  const next = random(seed)
  const sent = new Map<string, number>(rooms.map(room => [room, 0]))
  let total = 0
  while (total < 2000) {
    const burst = Math.min(2000 - total, 1 + next(100))
    for (let i = 0; i < burst; i++) {
      const room = rooms[next(rooms.length)]!
      const n = sent.get(room)!
      sent.set(room, n + 1)
      producer.sendMessage(room, `${room}:${n}`)
    }
    total += burst
    await call(producer.request('echo', [])) // the burst is stored before the next one starts
  }

  await Promise.all(
    consumers.map(consumer => eventually(() => consumer.messages.length >= 2000, { timeoutMs: 60_000 })),
  )
  for (const [index, consumer] of consumers.entries()) {
    const byRoom = new Map<string, number[]>()
    for (const message of consumer.messages) {
      const [room, n] = message.split(':') as [string, string]
      const list = byRoom.get(room) ?? []
      list.push(Number(n))
      byRoom.set(room, list)
    }
    t.is(consumer.messages.length, 2000, `consumer ${index}: every message once`)
    for (const room of rooms) {
      const expected = Array.from({ length: sent.get(room)! }, (_, n) => n)
      t.deepEqual(byRoom.get(room) ?? [], expected, `consumer ${index} (${consumer.kind}), ${room}`)
    }
  }
  // Nothing arrives late: no extra copies.
  await holdsFor(
    () => consumers.every(consumer => consumer.messages.length === 2000),
    200,
    'no message twice',
  )
})
