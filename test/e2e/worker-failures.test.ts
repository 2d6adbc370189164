/**
 * The primary of `snapper start --workers N` when workers fail, with the real
 * CLI: a worker that cannot start fails the whole start (exit 1, its reason)
 * instead of being restarted forever; a rolling restart whose new workers
 * cannot start keeps the old ones serving (and drains them at the end); a
 * second broker on a gateway port that one serves does not start; a drain
 * that fails in the workers makes the primary exit 1.
 */
import { createServer } from 'node:net'
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { connectProducer, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { isAlive, startCli } from '../helpers/cli.js'
import { freePorts } from '../helpers/ports.js'
import { connectConsumer } from '../helpers/consumers.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'
import { eventually, eventWithin } from '../helpers/eventually.js'

const tokens = new Tokens([TEST_SECRET])
const statsToken = tokens.sign({ name: 'snapper' })

test('a worker that cannot start fails the start: exit 1 with its reason, no restarts', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const gateway = await freePorts(2)
  const blocker = createServer().listen(gateway + 1, '127.0.0.1') // worker 1's gateway port
  await eventWithin(blocker, 'listening')
  t.teardown(() => blocker.close())

  const error = await t.throwsAsync(
    startCli(t, {
      workers: 2,
      env: {
        SNAPPER_REDIS: redis.url,
        SNAPPER_TOKEN_SECRETS: TEST_SECRET,
        SNAPPER_GATEWAY_PORT: String(gateway),
        SNAPPER_LOG_LEVEL: 'info',
      },
    }),
  )
  t.regex(error?.message ?? '', /^snapper exited with 1:/)
  t.regex(
    error?.message ?? '',
    new RegExp(
      `snapper: worker 1 could not start: consumer gateway cannot listen on 127\\.0\\.0\\.1:${gateway + 1}`,
    ),
  )
  t.notRegex(error?.message ?? '', /restarting it/)
})

test('a second broker on the gateway port another one serves does not start; the first keeps its consumers', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const env = { SNAPPER_REDIS: redis.url, SNAPPER_TOKEN_SECRETS: TEST_SECRET, SNAPPER_LOG_LEVEL: 'info' }
  const first = await startCli(t, { workers: 1, env: { ...env, SNAPPER_REDIS_PREFIX: uniquePrefix() } })

  // uWS listens with SO_REUSEPORT (a rolling restart's new worker shares the old one's port):
  // without the check, this one would start and the kernel would split consumers between the two.
  const gateway = String(first.ports.gateway)
  for (const workers of [0, 1]) {
    const error = await t.throwsAsync(
      startCli(t, {
        workers,
        env: { ...env, SNAPPER_REDIS_PREFIX: uniquePrefix(), SNAPPER_GATEWAY_PORT: gateway },
      }),
    )
    t.regex(error?.message ?? '', /^snapper exited with 1:/)
    t.regex(error?.message ?? '', new RegExp(`consumer gateway cannot listen on 127\\.0\\.0\\.1:${gateway}`))
  }

  // Every consumer on that port is the first broker's: each gets what it publishes.
  const producer = await connectProducer(t, first.ports.producer)
  for (let i = 0; i < 8; i++) {
    const userId = newUserId()
    const consumer = connectConsumer('v4 websocket', first.ports.gateway, tokens.sign({ userId }))
    t.teardown(() => consumer.close())
    await consumer.opened()
    producer.sendMessage(`user${userId}`, `to ${i}`)
    await consumer.waitFor(1)
  }
  first.signal('SIGTERM')
  t.is(await first.exited, 0, first.output())
})

test('a rolling restart whose new workers cannot start keeps the old ones serving', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const cli = await startCli(t, {
    workers: 2,
    env: {
      SNAPPER_REDIS: redis.url,
      SNAPPER_REDIS_PREFIX: uniquePrefix(),
      SNAPPER_TOKEN_SECRETS: TEST_SECRET,
      SNAPPER_LOG_LEVEL: 'info',
    },
  })
  const before = await cli.workerPids(statsToken)
  t.is(before.length, 2)

  // From now on a new Redis connection must authenticate: the running workers stay connected,
  // the new ones cannot start.
  await redis.client().config('SET', 'requirepass', 'rolled')
  cli.signal('SIGHUP')
  await eventually(() => cli.output().includes('rolling restart failed'), { timeoutMs: 20_000 })
  t.regex(cli.output(), /worker 0 could not start: cannot reach Redis/)

  t.deepEqual(await cli.workerPids(statsToken), before)
  t.is((await fetch(`http://127.0.0.1:${cli.ports.admin}/readyz`)).status, 200)
  const userId = newUserId()
  const consumer = connectConsumer('v4 websocket', cli.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.close())
  await consumer.opened()
  const producer = await connectProducer(t, cli.ports.producer)
  producer.sendMessage(`user${userId}`, 'still served')
  await consumer.waitFor(1)

  cli.signal('SIGTERM')
  t.is(await cli.exited, 0, cli.output())
  for (const pid of before) t.false(isAlive(pid), `old worker ${pid} was drained and stopped`)
})

test('workers whose drain times out make the primary exit 1', async t => {
  const frozen = await startRedis()
  t.teardown(() => frozen.stop())
  // The admin app off: the primary then holds no Redis connection of its own, so only the
  // workers' drains can fail. Without the admin's /readyz, "broker started" says ready.
  const cli = await startCli(t, {
    workers: 2,
    env: {
      SNAPPER_REDIS: frozen.url,
      SNAPPER_TOKEN_SECRETS: TEST_SECRET,
      SNAPPER_ADMIN_PORT: '0',
      SNAPPER_DRAIN_TIMEOUT_MS: '1000',
      SNAPPER_LOG_LEVEL: 'info',
    },
  })

  frozen.signal('SIGSTOP') // Redis hangs: the workers cannot persist anything
  t.teardown(() => frozen.signal('SIGCONT'))
  const started = Date.now()
  cli.signal('SIGTERM')
  t.is(await cli.exited, 1, cli.output())
  t.regex(cli.output(), /2 of 2 workers did not drain cleanly/)
  t.true(Date.now() - started < 1000 + 2000, 'the workers time out first, not the primary')
})
