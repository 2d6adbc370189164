/**
 * A full Redis (`maxmemory` with `noeviction`, as on the Redis `snapper
 * start` runs itself): a real redis-server with a tiny maxmemory refuses
 * writes, and producers hear why, over TCP and HTTP, as a temporary
 * STORE_UNAVAILABLE with the reason; nothing already stored is lost, and
 * publishing works again once memory is freed.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { call, connectProducer, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { startRedis } from '../helpers/redis.js'

const tokens = new Tokens([TEST_SECRET])
const FULL = {
  code: 'STORE_UNAVAILABLE',
  temporary: true,
  reason: 'Redis is out of memory (maxmemory reached): nothing was stored',
}

test('a publish to a full Redis gets STORE_UNAVAILABLE with the reason, over TCP and HTTP', async t => {
  const redis = await startRedis(['--maxmemory', '3mb', '--maxmemory-policy', 'noeviction'])
  t.teardown(() => redis.stop())
  const config: Config = {
    ...defaults,
    redis: { kind: 'standalone', url: redis.url },
    redisPrefix: 'FULL',
    tokenSecrets: [TEST_SECRET],
    drainSpreadMs: 0,
  }
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  t.teardown(() => node.stop())
  const producer = await connectProducer(t, node.ports.producer)
  const userId = newUserId()
  const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.close())
  await consumer.opened()

  // Fill it: 100 KB messages until Redis refuses one.
  const big = 'x'.repeat(100_000)
  let stored = 0
  let refusal: { data?: unknown } | undefined
  while (refusal === undefined && stored < 100) {
    await call(producer.request('publish', [[`user${userId}`, `${stored}:${big}`]])).then(
      () => stored++,
      (err: { data?: unknown }) => (refusal = err),
    )
  }
  t.true(stored > 0 && stored < 100, `${stored} stored before Redis was full`)
  t.deepEqual(refusal?.data, FULL)

  // Still full (its limit now well under what it holds, whatever the size of the next write).
  await redis.client().config('SET', 'maxmemory', '1mb')

  const http = await fetch(`http://127.0.0.1:${node.ports.admin}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.sign({ id: 'http' })}`, 'content-type': 'application/json' },
    body: JSON.stringify({ room: `user${userId}`, message: 'over http' }),
  })
  t.is(http.status, 503)
  t.deepEqual(((await http.json()) as { error: { data: unknown } }).error.data, FULL)

  // Memory freed: publishing works again, and everything stored before arrives, in order.
  await redis.client().config('SET', 'maxmemory', '0')
  t.is(await call(producer.request('publish', [[`user${userId}`, 'after']])), 1)
  await consumer.waitFor(stored + 1, 20_000)
  t.deepEqual(
    consumer.messages.map(message => message.split(':')[0]),
    [...Array.from({ length: stored }, (_, i) => String(i)), 'after'],
  )
})
