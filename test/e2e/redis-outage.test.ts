/**
 * Redis trouble, for real: unreachable at start-up (the CLI fails fast and
 * says where it looked), and an outage that starts later (redis-server
 * killed, then started again on its append-only file): consumers stay
 * connected, /readyz says not ready, and everything published before and
 * during the outage is delivered once Redis is back, in order, once; a
 * drain while Redis stays down ends after its budget.
 */
import { once } from 'node:events'
import test from 'ava'
import { pino } from 'pino'
import { Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { call, connectProducer, newUserId, TEST_SECRET, testConfig } from '../helpers/broker.js'
import { CLI } from '../helpers/cli.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { freePort } from '../helpers/ports.js'
import { startRedis } from '../helpers/redis.js'
import { spawn } from 'node:child_process'
import { eventually, holdsFor, within } from '../helpers/eventually.js'

const tokens = new Tokens([TEST_SECRET])

for (const workers of [0, 2]) {
  test(`snapper start --workers ${workers} fails fast and says so when Redis is unreachable, without its password`, async t => {
    const deadPort = await freePort()
    const started = Date.now()
    const child = spawn(process.execPath, [CLI, 'start', '--workers', String(workers)], {
      env: {
        ...process.env,
        SNAPPER_REDIS: `redis://snapper:hunter2@127.0.0.1:${deadPort}`,
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
    child.stdout.on('data', (chunk: Buffer) => (output += chunk)) // the log lines
    const [code] = (await within(once(child, 'exit'), 20_000, () => `snapper to give up:\n${output}`)) as [
      number | null,
    ]
    t.is(code, 1)
    t.true(Date.now() - started < 15_000)
    t.regex(output, new RegExp(`cannot reach Redis at redis://\\*\\*\\*@127\\.0\\.0\\.1:${deadPort}`))
    t.false(output.includes('hunter2'), 'the password is never printed')
  })
}

test('through a Redis outage consumers stay connected, /readyz turns false, and nothing is lost', async t => {
  const redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always'])
  t.teardown(() => redis.stop())
  const config = testConfig(redis.url, {
    // A failure leaves Redis down: the teardown's drain gives up after this.
    drainTimeoutMs: 3000,
    // Heartbeats every 300 ms, a dead one found within 1.8 s: the outage below spans several,
    // and a loaded machine's pauses of a second do not end a session.
    pingIntervalMs: 300,
    pingTimeoutMs: 1500,
  })
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  t.teardown(() => node.stop())
  const readyz = async (): Promise<number> =>
    (await fetch(`http://127.0.0.1:${node.ports.admin}/readyz`, { signal: AbortSignal.timeout(3000) })).status

  const consumers: TestConsumer[] = (
    ['v3 default', 'v3 websocket', 'v4 default', 'v4 websocket'] as const
  ).map(kind => connectConsumer(kind, node.ports.gateway, tokens.sign({ userId: newUserId() })))
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  const ids = await within(
    Promise.all(consumers.map(consumer => consumer.opened())),
    10_000,
    'the four consumers to open',
  )
  const producer = await connectProducer(t, node.ports.producer)
  await within(
    Promise.all(ids.map(id => call(producer.joinRoom('weather', id)))),
    10_000,
    'the joins to be answered',
  )
  for (let i = 0; i < 10; i++) producer.sendMessage('weather', `before ${i}`)
  await Promise.all(consumers.map(consumer => consumer.waitFor(10)))
  t.is(await readyz(), 200)

  await within(redis.kill('SIGKILL'), 5000, 'redis-server to exit')
  await eventually(async () => (await readyz()) === 503, { timeoutMs: 5000, what: '/readyz 503' })
  for (let i = 0; i < 10; i++) producer.sendMessage('weather', `during ${i}`)
  await holdsFor(
    () =>
      node.gateway.engine.sessions.size === consumers.length && consumers.every(c => c.errors.length === 0),
    2500,
    'several heartbeat periods without Redis: the sessions live on',
  )

  await redis.restart()
  await eventually(async () => (await readyz()) === 200, { timeoutMs: 15_000, what: '/readyz 200' })
  for (let i = 0; i < 10; i++) producer.sendMessage('weather', `after ${i}`)
  const expected = ['before', 'during', 'after'].flatMap(phase =>
    Array.from({ length: 10 }, (_, i) => `${phase} ${i}`),
  )
  await Promise.all(consumers.map(consumer => consumer.waitFor(expected.length, 20_000)))
  await holdsFor(() => consumers.every(c => c.messages.length === expected.length), 200, 'nothing twice')
  for (const consumer of consumers) t.deepEqual(consumer.messages, expected)
})

test('a drain while Redis is down gives up after drainTimeoutMs and says so, with the bytes published but not stored', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const config = testConfig(redis.url, {
    drainTimeoutMs: 1000,
  })
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'error' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const node = await startNode(config, logger, { gateway: 0, producer: 0, admin: 0 })
  const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.close())
  await within(consumer.opened(), 10_000, 'the consumer to open')
  const producer = await connectProducer(t, node.ports.producer)
  await within(redis.kill('SIGKILL'), 5000, 'redis-server to exit')
  producer.sendMessage('weather', 'x'.repeat(100)) // read, never stored
  const published = 'weather'.length + 100 // the backlog counts room and message
  await eventually(() => node.core.producerApi.backlog.bytes === published, {
    what: 'the message to be read',
  })
  // Its release (cursors, presence) now waits for Redis, which does not come back.
  const started = Date.now()
  const error = await t.throwsAsync(within(node.stop(), 10_000, 'the drain to end'))
  t.regex(
    error?.message ?? '',
    /^drain not done within 1000 ms \(Redis connection (reconnecting|connecting|close)\)$/,
  )
  t.true(Date.now() - started < 3000, `gave up after ${Date.now() - started} ms`)
  t.like(
    lines.find(line => line.msg === 'node drain timed out'),
    { unstoredBytes: published },
  )
})

test('through a Redis outage memory stays bounded: publishes wait behind publishMaxPendingBytes, producers are paused, periodic work and new sessions do not queue', async t => {
  const redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always'])
  t.teardown(() => redis.stop())
  const maxPendingBytes = 64 * 1024
  const config = testConfig(redis.url, {
    drainTimeoutMs: 3000,
    publishMaxPendingBytes: maxPendingBytes,
    // Every periodic task runs many times during the outage below.
    cursorFlushMs: 50,
    statsFlushMs: 50,
    nodeTtlMs: 300,
  })
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  t.teardown(() => node.stop())
  const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.close())
  const id = await within(consumer.opened(), 10_000, 'the consumer to open')
  const producer = await connectProducer(t, node.ports.producer)
  await within(call(producer.joinRoom('flood', id)), 10_000, 'the join to be answered')

  await within(redis.kill('SIGKILL'), 5000, 'redis-server to exit')
  await eventually(() => !node.core.redis.isReady(), { what: 'the node to see Redis down' })
  const messages = Array.from({ length: 1000 }, (_, i) => `${i}`.padStart(1024, '.'))
  for (const message of messages) producer.sendMessage('flood', message)
  await eventually(() => node.producer.stats.paused === 1, { what: 'the producer connection to be paused' })
  // Past the bound by one frame at most: snapper-producer sends 50 messages a frame.
  const limit = maxPendingBytes + 50 * (1024 + 'flood'.length)
  // Without the bounds, each 50 ms tick of the periodic tasks would queue more.
  await holdsFor(
    () =>
      node.core.producerApi.backlog.bytes <= limit &&
      node.core.redis.offlineCommands() < 20 &&
      node.producer.stats.paused === 1,
    1500,
    'the backlog within its bound, few commands queued for Redis, the producer paused',
  )

  const base = `http://127.0.0.1:${node.ports.admin}`
  const http = await fetch(`${base}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.sign({ id: 'http' })}`, 'content-type': 'application/json' },
    body: JSON.stringify([{ room: 'flood', message: 'over http' }]),
    signal: AbortSignal.timeout(3000),
  })
  t.is(http.status, 503, 'an HTTP publish cannot wait')
  const handshake = await fetch(
    `http://127.0.0.1:${node.ports.gateway}/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId: newUserId() })}`,
    { signal: AbortSignal.timeout(3000) },
  )
  t.is(handshake.status, 503, 'a new session cannot be served without Redis')
  t.truthy(handshake.headers.get('retry-after'))

  await redis.restart()
  await consumer.waitFor(messages.length, 20_000)
  t.deepEqual(consumer.messages, messages)
  t.is(node.producer.stats.paused, 0)
})
