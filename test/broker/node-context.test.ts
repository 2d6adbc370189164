/**
 * A node's per-consumer Redis work through an outage: each failure is
 * counted (redisErrors), and logged at most logMaxFailuresPerSec a second,
 * the rest counted in one line.
 */
import test from 'ava'
import { consumerIdOf } from '../../src/auth/token.js'
import { RecordingSink, startTestNode } from '../helpers/broker.js'
import { assertBounded, captureLog } from '../helpers/log-lines.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const USER = '55a07f2dee06c78e1357b0ad'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('300 consumer releases failed by an outage: each counted; logged at most logMaxFailuresPerSec a second, the rest counted', async t => {
  const { logger, lines } = captureLog()
  const { core, node } = await startTestNode(t, server.url, { logMaxFailuresPerSec: 4 }, logger)
  const total = 300
  const sinks = await Promise.all(
    Array.from({ length: total }, (_, i) =>
      new RecordingSink(node).connect(consumerIdOf({ userId: USER, exp: i + 1 }), USER),
    ),
  )
  t.is(node.online, total)

  // Their sessions close while Redis hangs (stopped), then the drain gives up on it: every release fails.
  server.signal('SIGSTOP')
  t.teardown(() => server.signal('SIGCONT'))
  const releases = sinks.map(sink => node.disconnect(sink.outbox!, sink))
  core.redis.disconnect()
  server.signal('SIGCONT')
  await Promise.all(releases)

  t.true(node.counters.redisErrors >= total, `${node.counters.redisErrors} counted`)
  await assertBounded(t, lines, 'consumer release failed', { total, perSecond: 4, level: 'warn' })
})
