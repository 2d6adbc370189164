/**
 * Exactly once when Redis's replies are lost: the connection drops after
 * Redis ran the appends but before their replies arrived, ioredis sends them
 * again after the reconnect, and each message is still stored, announced and
 * delivered once (room_append-4n.lua numbers each call of a writer).
 */
import test from 'ava'
import { userRoom } from '../../src/redis/keys.js'
import { range, RecordingSink, startTestNode } from '../helpers/broker.js'
import { startRedisProxy } from '../helpers/redis-proxy.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { holdsFor } from '../helpers/eventually.js'

let redis: RedisServer
test.before(async () => {
  redis = await startRedis()
})
test.after.always(() => redis?.stop())

const USER = '55a07f2dee06c78e1357b0ad'

test('appends whose replies were lost are sent again and stored once: log, announcements and delivery exactly once, in order', async t => {
  const proxy = await startRedisProxy(redis.port)
  t.teardown(() => proxy.close())
  const { node, core } = await startTestNode(t, proxy.url)
  const sink = await new RecordingSink(node).connect('t.lost-replies', USER)
  const room = userRoom(USER)
  const messages = range(200).map(i => `lost-reply-${i}`)

  // 200 calls in one tick: Redis runs some (or all) before the connection and their replies are lost.
  proxy.loseReplyTo(`${messages[0]}\r\n`)
  const answers = await Promise.all(messages.map(m => core.producerApi.publish([[room, m]])))
  t.is(proxy.cuts, 1)
  t.deepEqual(
    answers,
    messages.map(() => 1),
  )

  const entries = await redis.client().xrange(core.keys.room(room).log, '-', '+')
  t.deepEqual(
    entries.map(([, fields]) => fields[1]),
    messages,
  )
  t.deepEqual(
    entries.map(([id]) => Number(id.split('-')[1])),
    messages.map((_, i) => i + 1),
    'contiguous sequence numbers',
  )
  await sink.waitFor(200)
  await holdsFor(() => sink.messages.length === messages.length, 200, 'no duplicate')
  t.deepEqual(sink.messages, messages)
})
