/**
 * A node's per-consumer Redis work through an outage: each failure is
 * counted (redisErrors), and logged at most logMaxFailuresPerSec a second,
 * the rest counted in one line.
 */
import test from 'ava'
import { consumerIdOf } from '../../src/auth/token.js'
import { RecordingSink, startTestNode } from '../helpers/broker.js'
import { eventually } from '../helpers/eventually.js'
import { boundedLines, captureLog, saidOf } from '../helpers/log-lines.js'
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
  await eventually(() => saidOf(boundedLines(lines, 'consumer release failed')) === total, {
    what: 'every failure to be logged or counted',
  })
  const { logged, skipped, counts } = boundedLines(lines, 'consumer release failed')
  // The failures come within a second, unless a loaded machine spreads them over two.
  t.true(skipped.length >= 1 && skipped.length <= 2, `${skipped.length} counts, ${logged.length} lines`)
  t.true(logged.length <= 4 * skipped.length, `${logged.length} lines`)
  t.true(
    logged.every(line => line.level === 40 && line.err !== undefined),
    'warn level, with the error',
  )
  t.true(counts.every(line => line.level === 40 && line.perSecond === 4))
})
