/**
 * Operations under load, with the real CLI: a rolling restart of every
 * worker (SIGHUP) while a producer publishes and consumers receive loses no
 * message and delivers none twice; SIGTERM drains and exits 0.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { call, connectProducer, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { startCliOn } from '../helpers/cli.js'
import { connectConsumer } from '../helpers/consumers.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { eventually, holdsFor, pause } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

test('a rolling restart of all workers under load loses no message and duplicates none', async t => {
  const cli = await startCliOn(t, server.url, TEST_SECRET, 2, {
    SNAPPER_LOG_LEVEL: 'info',
    SNAPPER_DRAIN_SPREAD_MS: '300',
  })
  const statsToken = tokens.sign({ name: 'snapper' })
  const before = await cli.workerPids(statsToken)
  t.is(before.length, 2)

  // Consumers on both workers' ports; snapper-consumer reconnects 100 ms after a close here.
  const consumers = Array.from({ length: 20 }, (_, i) =>
    connectConsumer(
      i % 2 === 0 ? 'v3 websocket' : 'v3 default',
      cli.ports.gateway + (i % 2),
      tokens.sign({ userId: newUserId() }),
      {
        reconnectMs: 100,
      },
    ),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  const ids = await Promise.all(consumers.map(consumer => consumer.opened()))
  const producer = await connectProducer(t, cli.ports.producer)
  await Promise.all(ids.map(id => call(producer.joinRoom('rolling', id))))

  // Traffic in bursts, as from an API server, through the whole restart.
  let sent = 0
  let stop = false
  const publishing = (async () => {
    while (!stop) {
      for (let i = 0; i < 10; i++) producer.sendMessage('rolling', String(sent++))
      await pause(40)
    }
  })()
  await pause(500) // traffic before the restart
  cli.signal('SIGHUP')
  await eventually(() => cli.output().includes('rolling restart done'), {
    what: () => `the rolling restart:\n${cli.output()}`,
    timeoutMs: 60_000,
    everyMs: 100,
  })
  await pause(500) // and after it
  stop = true
  await publishing

  const after = await cli.workerPids(statsToken)
  t.is(after.length, 2)
  t.false(
    after.some(pid => before.includes(pid)),
    'every worker was replaced',
  )
  const expected = Array.from({ length: sent }, (_, i) => String(i))
  await Promise.all(consumers.map(consumer => consumer.waitFor(sent, 30_000)))
  await holdsFor(() => consumers.every(c => c.messages.length === sent), 300, 'no duplicate')
  for (const consumer of consumers) t.deepEqual(consumer.messages, expected)

  cli.signal('SIGTERM')
  t.is(await cli.exited, 0)
})
