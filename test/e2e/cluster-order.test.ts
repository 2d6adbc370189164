/**
 * A master of the Redis Cluster dies (SIGKILL) while two producers stream
 * numbered messages to four rooms of that master, as notifications and as
 * requests in turn, with the default `redisReplicaAcks` 0. ioredis retries
 * the appends caught by the failover from queues of its own (and gives up
 * on them after 16 tries, ~1.7 s, shorter than a failover), while later
 * ones reach the promoted replica as soon as the slot map names it; the room
 * log puts them back in order and stores each once (OrderedAppends).
 *
 * Nothing may be lost here though replication is asynchronous: on one
 * connection Redis writes a command's replication stream before its reply,
 * and the kernel delivers over loopback what was written before the kill, so
 * the replica has everything an append was answered for.
 */
import test from 'ava'
import type Producer from 'snapper-producer'
import { consumerIdOf } from '../../src/auth/token.js'
import { Keys } from '../../src/redis/keys.js'
import { connectProducer, newUserId, RecordingSink, startBroker } from '../helpers/broker.js'
import { namesOnOneMaster, startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { eventually, pause } from '../helpers/eventually.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster()
})
test.after.always(() => cluster?.stop())

/** One room's stream: message n is `<room>:<n>`, odd ones notifications, even ones requests. */
interface Stream {
  readonly room: string
  readonly producer: Producer
  sent: number
  readonly failed: string[]
}

test('a master killed mid-stream (redisReplicaAcks 0): each room log holds every message once, in the order sent, and the consumer gets them so', async t => {
  const redis = cluster!
  const broker = await startBroker(t, redis.target)
  const keys = new Keys(broker.config.redisPrefix)
  const rooms = await namesOnOneMaster(redis, 'order', 4, room => keys.room(room).log)
  const producers = [
    await connectProducer(t, broker.ports.producer),
    await connectProducer(t, broker.ports.producer),
  ]
  const userId = newUserId()
  const consumerId = consumerIdOf({ userId, exp: 1 }) // as a token makes it
  const sink = await new RecordingSink(broker.node).connect(consumerId, userId)
  for (const room of rooms) await broker.core.producerApi.subscribe(room, consumerId)

  const streams: Stream[] = rooms.map((room, i) => ({
    room,
    producer: producers[i % 2]!,
    sent: 0,
    failed: [],
  }))
  let unanswered = 0
  const publishing = setInterval(() => {
    for (const stream of streams) {
      const message = `${stream.room}:${stream.sent}`
      if (stream.sent++ % 2 === 1) stream.producer.sendMessage(stream.room, message)
      else {
        unanswered++
        stream.producer.request('publish', [[stream.room, message]])((err: unknown) => {
          unanswered--
          if (err) stream.failed.push(message)
        })
      }
    }
  }, 5)
  t.teardown(() => clearInterval(publishing))
  await pause(1000)
  const { killed, promoted } = await redis.killMaster(keys.room(rooms[0]!).log)
  const sentAtPromotion = streams[0]!.sent
  await pause(1000) // publishing on to the promoted master
  clearInterval(publishing)
  t.log(`killed ${killed.address}, promoted ${promoted.address}; ${streams[0]!.sent} messages a room`)
  t.true(sentAtPromotion > 0 && streams[0]!.sent > sentAtPromotion)

  await eventually(() => unanswered === 0, { what: 'every request answered', timeoutMs: 20_000 })
  for (const { room, failed } of streams) t.deepEqual(failed, [], `${room}: requests that failed`)
  const client = redis.client()
  // The last messages may be notifications, which nothing answered: they may still be on their way.
  const isLogged = async ({ room, sent }: Stream): Promise<boolean> =>
    (await client.xlen(keys.room(room).log)) >= sent
  await eventually(async () => (await Promise.all(streams.map(isLogged))).every(Boolean), {
    what: 'every message sent in its room log',
  })
  for (const { room, sent } of streams) {
    const logged = (await client.xrange(keys.room(room).log, '-', '+')).map(([, fields]) => fields[1])
    t.deepEqual(logged, sendOrder(room, sent), `${room}: the log`)
  }
  const total = streams.reduce((sum, stream) => sum + stream.sent, 0)
  await sink.waitFor(total, 20_000)
  for (const { room, sent } of streams)
    t.deepEqual(
      sink.messages.filter(message => message.startsWith(`${room}:`)),
      sendOrder(room, sent),
      `${room}: deliveries`,
    )
  t.is(sink.messages.length, total, 'nothing delivered twice')
})

const sendOrder = (room: string, count: number): string[] =>
  Array.from({ length: count }, (_, n) => `${room}:${n}`)
