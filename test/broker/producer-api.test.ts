/**
 * The producer API through a Redis outage: every call fails, each is answered
 * STORE_UNAVAILABLE and counted, and the log says so in a bounded number of
 * lines (logMaxFailuresPerSec a second, the rest counted in one).
 */
import test from 'ava'
import { createBrokerCore } from '../../src/broker/core.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { eventually } from '../helpers/eventually.js'
import { assertBounded, captureLog } from '../helpers/log-lines.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { authedRawProducer, error, request, SECRET } from '../producer/setup.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('500 publishes failed by an outage: each answered STORE_UNAVAILABLE and counted; `redis command failed` logged at most logMaxFailuresPerSec a second, the rest counted', async t => {
  const { logger, lines } = captureLog()
  const config: Config = {
    ...defaults,
    redisPrefix: uniquePrefix(),
    tokenSecrets: [SECRET],
    logMaxFailuresPerSec: 5,
  }
  const clients = createRedisClients({ kind: 'standalone', url: server.url }, silentLogger)
  await clients.connect(5000)
  t.teardown(() => clients.disconnect())
  const core = createBrokerCore(config, clients, logger)
  const { listener, producer } = await authedRawProducer(t, core, config)

  // Redis hangs (stopped), then the drain gives up on it: every publish waiting for it fails at once.
  server.signal('SIGSTOP')
  t.teardown(() => server.signal('SIGCONT'))
  const total = 500
  const ids = Array.from({ length: total }, (_, i) => `p:${String(i).padStart(3, '0')}`)
  producer.send(ids.map(id => request(id, 'publish', [['outage', `m ${id}`]])).join(''))
  await eventually(() => listener.stats.frames === total + 1, { what: 'every publish to be read' })
  clients.disconnect()
  server.signal('SIGCONT')

  const answer = (id: string): string =>
    error(id, 'Storage unavailable, retry', -32003, { code: 'STORE_UNAVAILABLE', temporary: true })
  const answers = await producer.read(ids.reduce((bytes, id) => bytes + Buffer.byteLength(answer(id)), 0))
  t.deepEqual(answers.match(/\$\d+\r\n.*?\r\n/g)?.sort(), ids.map(answer).sort())
  t.is(listener.stats.errors.STORE_UNAVAILABLE, total)

  await assertBounded(t, lines, 'redis command failed', { total, perSecond: 5, level: 'error' })
})
