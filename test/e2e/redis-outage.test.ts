/**
 * Redis trouble, for real: unreachable at start-up (the CLI fails fast and
 * says where it looked), and an outage that starts later (redis-server
 * killed, then started again on its append-only file): consumers stay
 * connected, /readyz says not ready, and everything published before and
 * during the outage is delivered once Redis is back, in order, once.
 */
import { once } from 'node:events'
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { call, connectProducer, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { CLI } from '../helpers/cli.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { freePort } from '../helpers/ports.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'
import { spawn } from 'node:child_process'
import { eventually, holdsFor } from '../helpers/eventually.js'

const tokens = new Tokens([TEST_SECRET])

for (const workers of [0, 2]) {
  test(`snapper start --workers ${workers} fails fast and says so when Redis is unreachable`, async t => {
    const deadPort = await freePort()
    const started = Date.now()
    const child = spawn(process.execPath, [CLI, 'start', '--workers', String(workers)], {
      env: {
        ...process.env,
        SNAPPER_REDIS: `redis://127.0.0.1:${deadPort}`,
        SNAPPER_TOKEN_SECRETS: TEST_SECRET,
        SNAPPER_GATEWAY_PORT: String(await freePort()),
        SNAPPER_PRODUCER_PORT: String(await freePort()),
        SNAPPER_ADMIN_PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    t.teardown(() => child.kill('SIGKILL'))
    let output = ''
    child.stderr.on('data', (chunk: Buffer) => (output += chunk))
    const [code] = (await once(child, 'exit')) as [number | null]
    t.is(code, 1)
    t.true(Date.now() - started < 15_000)
    t.regex(output, new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${deadPort}`))
  })
}

test('through a Redis outage consumers stay connected, /readyz turns false, and nothing is lost', async t => {
  const redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always'])
  t.teardown(() => redis.stop())
  const config: Config = {
    ...defaults,
    redis: { kind: 'standalone', url: redis.url },
    redisPrefix: uniquePrefix(),
    tokenSecrets: [TEST_SECRET],
    drainSpreadMs: 0,
    pingIntervalMs: 500,
    pingTimeoutMs: 500,
  }
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  t.teardown(() => node.stop())
  const readyz = async (): Promise<number> =>
    (await fetch(`http://127.0.0.1:${node.ports.admin}/readyz`)).status

  const consumers: TestConsumer[] = (
    ['v3 default', 'v3 websocket', 'v4 default', 'v4 websocket'] as const
  ).map(kind => connectConsumer(kind, node.ports.gateway, tokens.sign({ userId: newUserId() })))
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  const ids = await Promise.all(consumers.map(consumer => consumer.opened()))
  const producer = await connectProducer(t, node.ports.producer)
  await Promise.all(ids.map(id => call(producer.joinRoom('weather', id))))
  for (let i = 0; i < 10; i++) producer.sendMessage('weather', `before ${i}`)
  await Promise.all(consumers.map(consumer => consumer.waitFor(10)))
  t.is(await readyz(), 200)

  await redis.kill('SIGKILL')
  await eventually(async () => (await readyz()) === 503, { timeoutMs: 5000 })
  for (let i = 0; i < 10; i++) producer.sendMessage('weather', `during ${i}`)
  await holdsFor(
    () =>
      node.gateway.engine.sessions.size === consumers.length && consumers.every(c => c.errors.length === 0),
    2500,
    'several heartbeat periods without Redis: the sessions live on',
  )

  await redis.restart()
  await eventually(async () => (await readyz()) === 200, { timeoutMs: 15_000 })
  for (let i = 0; i < 10; i++) producer.sendMessage('weather', `after ${i}`)
  const expected = ['before', 'during', 'after'].flatMap(phase =>
    Array.from({ length: 10 }, (_, i) => `${phase} ${i}`),
  )
  await Promise.all(consumers.map(consumer => consumer.waitFor(expected.length, 20_000)))
  await holdsFor(() => consumers.every(c => c.messages.length === expected.length), 200, 'nothing twice')
  for (const consumer of consumers) t.deepEqual(consumer.messages, expected)
})
