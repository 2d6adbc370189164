/**
 * A node cut off from Redis for longer than nodeTtlMs looks dead to the
 * others, and a `consumers` asked meanwhile drops its consumers' presence
 * entries (Presence.count drops dead nodes' entries). The node's sessions
 * lived on through the cut: once it is back, they count again by themselves,
 * at its first liveness refresh (it finds its key gone), not at the next
 * refresh of its consumers' keys (100 s).
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, pause } from '../helpers/eventually.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'
import { startRedisProxy } from '../helpers/redis-proxy.js'

const tokens = new Tokens([TEST_SECRET])

test('a consumer whose node was cut off from Redis past nodeTtlMs counts in `consumers` again once the node is back', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const proxy = await startRedisProxy(redis.port)
  t.teardown(() => proxy.close())
  const redisPrefix = uniquePrefix()
  // The node's liveness refreshed every 500 ms; the consumers' keys every 100 s (the default), past the test's end.
  const settings = { redisPrefix, nodeTtlMs: 1500, drainTimeoutMs: 2000 }
  const cutOff = await startBroker(t, proxy.url, settings)
  const other = await startBroker(t, redis.url, settings)
  const userId = newUserId()
  const consumer = connectConsumer('v4 websocket', cutOff.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.close())
  await consumer.opened()
  const producer = await connectProducer(t, other.ports.producer)
  const count = async (): Promise<number> =>
    ((await call(producer.request('consumers', [userId]))) as { length: number }).length
  t.is(await count(), 1)

  proxy.down()
  await eventually(async () => (await count()) === 0, {
    timeoutMs: 10_000,
    everyMs: 100,
    what: 'the cut-off node to count as dead',
  })
  await pause(1000)
  proxy.up()

  await eventually(async () => (await count()) === 1, {
    timeoutMs: 10_000,
    everyMs: 100,
    what: 'the consumer, connected throughout, to count again',
  })
  t.is(consumer.errors.length, 0, 'the session lived through the cut')
})
