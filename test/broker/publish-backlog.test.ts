/**
 * The publish backlog (publishMaxPendingBytes) counts what waits for Redis in
 * UTF-8 bytes, as the README says: a text of few characters and many bytes
 * weighs its bytes.
 */
import test from 'ava'
import { createBrokerCore } from '../../src/broker/core.js'
import { defaults } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('publishes and tracked messages wait in the backlog as the UTF-8 bytes of their rooms and messages', async t => {
  const redis = createRedisClients({ kind: 'standalone', url: server.url }, silentLogger)
  t.teardown(() => redis.quit())
  await redis.connect(5000)
  const { producerApi } = createBrokerCore({ ...defaults, redisPrefix: uniquePrefix() }, redis, silentLogger)
  const { backlog } = producerApi

  // 'café' is 4 characters and 5 bytes, '€€€' 3 characters and 9 bytes.
  const published = producerApi.publish([
    ['café', '€€€'],
    ['r', 'plain'],
  ])
  t.is(backlog.bytes, 5 + 9 + 1 + 5, 'held until Redis has stored them')
  t.is(await published, 2)
  t.is(backlog.bytes, 0, 'given back once stored')

  const tracked = producerApi.track('café', '😀') // 2 UTF-16 units, 4 bytes
  t.is(backlog.bytes, 5 + 4)
  t.is(typeof (await tracked), 'string', 'its id')
  t.is(backlog.bytes, 0)
})
