/**
 * The bench's `scripts` floor must do the Redis work of Snapper's guarantees,
 * or what it bounds is not Snapper's: its handshake takes the consumer with
 * consumer_connect-5.lua (node key, presence, the own room at its head), its
 * appends go through room_append-4n.lua (seq numbers from 1 in the room's
 * head, one log entry each), and its consumers' acks reach the room's
 * progress hash within a cursor flush, at the last message acknowledged.
 */
import test from 'ava'
import { Publisher } from '../../bench/load/publisher.js'
import { RunningTarget } from '../../bench/servers/targets.js'
import { Keys } from '../../src/redis/keys.js'
import { newUserId, TEST_SECRET } from '../helpers/broker.js'
import { eventually } from '../helpers/eventually.js'
import { leanConsumerOf } from '../helpers/lean-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test("the scripts floor stores, numbers and acknowledges with Snapper's scripts", async t => {
  const prefix = 'FLOOR'
  const target = await RunningTarget.start('scripts', {
    workers: 1,
    redisUrl: server.url,
    secret: TEST_SECRET,
    prefix,
  })
  t.teardown(() => target.stop())
  const userId = newUserId()
  const lean = leanConsumerOf(target.consumerSpec(0, { userId, rooms: [] }))
  t.teardown(() => lean.close())
  await lean.isOpen

  const redis = server.client()
  const keys = new Keys(prefix)
  const consumerId = lean.consumer.sid
  t.truthy(await redis.get(keys.consumer(consumerId).node), 'the handshake took the consumer')
  t.truthy(await redis.hget(keys.presence(userId), consumerId), 'and wrote its presence')

  const room = `user${userId}`
  const publisher = await Publisher.open(target)
  t.teardown(() => publisher.close())
  const messages = ['one', 'two', 'three'].map(text => JSON.stringify({ text }))
  await publisher.publishStored(messages.map(message => [room, message] as const))
  await eventually(() => lean.consumer.recorded!.length === 3, { what: 'the three messages delivered' })
  t.deepEqual(lean.consumer.recorded, messages)

  const { head, log, progress } = keys.room(room)
  t.is(await redis.hget(head, 's'), '3', 'numbered 1, 2, 3 in the head')
  const entries = await redis.xrange(log, '-', '+')
  t.deepEqual(
    entries.map(([id]) => id.split('-')[1]),
    ['1', '2', '3'],
  )
  // The lean consumer acks every batch; the flush writes the last one's cursor.
  await eventually(async () => (await redis.hget(progress, consumerId)) === entries[2]![0], {
    what: "the ack's cursor in the room's progress",
    timeoutMs: 5000,
  })
  t.pass()
})
