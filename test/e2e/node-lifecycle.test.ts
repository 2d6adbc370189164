/**
 * A node's life seen from outside, with the real CLI (one node, --workers 0):
 * a node that crashes stops counting its consumers within nodeTtlMs; SIGTERM
 * drains and exits 0, and what it acknowledged is not delivered again by the
 * next node; SIGHUP does the same in a single process (only a primary has
 * workers to restart in turn); a drain that cannot finish (Redis frozen) still ends, within
 * drainTimeoutMs, with exit code 1.
 */
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { startCli } from '../helpers/cli.js'
import { connectConsumer, type ClientKind } from '../helpers/consumers.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { eventually, holdsFor } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])
const envFor = (prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
  SNAPPER_REDIS: server.url,
  SNAPPER_REDIS_PREFIX: prefix,
  SNAPPER_TOKEN_SECRETS: TEST_SECRET,
  ...extra,
})

/**
 * After a drain: a new node on the same Redis sends the consumer nothing it
 * acknowledged before (its cursors were persisted), only what comes next.
 */
async function nextNodeSendsOnlyNew(
  t: ExecutionContext,
  prefix: string,
  userId: string,
  kind: ClientKind,
): Promise<void> {
  const next = await startCli(t, { workers: 0, env: envFor(prefix) })
  const again = connectConsumer(kind, next.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => again.close())
  await again.opened()
  const producer = await connectProducer(t, next.ports.producer)
  producer.sendMessage(`user${userId}`, 'next')
  await again.waitFor(1)
  await holdsFor(() => again.messages.length === 1, 200, 'nothing acknowledged sent again')
  t.deepEqual(again.messages, ['next'])
  next.signal('SIGTERM')
  t.is(await next.exited, 0)
}

test('a crashed node stops counting its consumers within nodeTtlMs', async t => {
  const prefix = uniquePrefix()
  const cli = await startCli(t, { workers: 0, env: envFor(prefix, { SNAPPER_NODE_TTL_MS: '1000' }) })
  const observer = await startBroker(t, server.url, { redisPrefix: prefix })
  const producer = await connectProducer(t, observer.ports.producer)
  const userId = newUserId()
  const consumer = connectConsumer('v4 websocket', cli.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.close())
  await consumer.opened()
  const count = async (): Promise<number> =>
    ((await call(producer.request('consumers', [userId]))) as { length: number }).length
  t.is(await count(), 1)

  cli.signal('SIGKILL')
  await cli.exited
  const killedAt = Date.now()
  await eventually(async () => (await count()) === 0, { timeoutMs: 5000 })
  t.true(Date.now() - killedAt < 2500, 'within nodeTtlMs (1 s) plus the liveness cache')
})

test('SIGTERM drains: exit 0, and the next node sends nothing that was acknowledged', async t => {
  const prefix = uniquePrefix()
  const first = await startCli(t, { workers: 0, env: envFor(prefix, { SNAPPER_DRAIN_SPREAD_MS: '200' }) })
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const producer = await connectProducer(t, first.ports.producer)
  const consumer = connectConsumer('v3 websocket', first.ports.gateway, token)
  t.teardown(() => consumer.close())
  await consumer.opened()
  for (let i = 0; i < 100; i++) producer.sendMessage(`user${userId}`, String(i))
  await consumer.waitFor(100)
  first.signal('SIGTERM')
  t.is(await first.exited, 0)
  consumer.close()

  await nextNodeSendsOnlyNew(t, prefix, userId, 'v3 websocket')
})

test('SIGHUP with --workers 0 drains like SIGTERM: exit 0, nothing acknowledged is sent again', async t => {
  const prefix = uniquePrefix()
  const first = await startCli(t, { workers: 0, env: envFor(prefix, { SNAPPER_DRAIN_SPREAD_MS: '200' }) })
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const producer = await connectProducer(t, first.ports.producer)
  const consumer = connectConsumer('v4 websocket', first.ports.gateway, token)
  t.teardown(() => consumer.close())
  await consumer.opened()
  for (let i = 0; i < 20; i++) producer.sendMessage(`user${userId}`, String(i))
  await consumer.waitFor(20)
  first.signal('SIGHUP') // a single process has nothing to restart in turn
  t.is(await first.exited, 0, first.output())
  consumer.close()

  await nextNodeSendsOnlyNew(t, prefix, userId, 'v4 websocket')
})

// Ctrl-C, and systemd's stop (KillMode=control-group), signal every process of the group: the
// workers get the signal twice (once from the primary). Each must still drain, once.
for (const [signal, how] of [
  ['SIGINT', 'Ctrl-C'],
  ['SIGTERM', "systemd's stop"],
] as const) {
  test(`${how} (${signal} to the whole process group) drains every worker once: exit 0, cursors persisted`, async t => {
    const prefix = uniquePrefix()
    const cli = await startCli(t, { workers: 2, env: envFor(prefix, { SNAPPER_DRAIN_SPREAD_MS: '200' }) })
    const userId = newUserId()
    const token = tokens.sign({ userId })
    const producer = await connectProducer(t, cli.ports.producer)
    const consumer = connectConsumer('v4 websocket', cli.ports.gateway + 1, token)
    t.teardown(() => consumer.close())
    await consumer.opened()
    for (let i = 0; i < 100; i++) producer.sendMessage(`user${userId}`, String(i))
    await consumer.waitFor(100)
    cli.signalGroup(signal)
    t.is(await cli.exited, 0)
    t.false(cli.output().includes('second signal'), cli.output())
    t.deepEqual(
      consumer.messages,
      Array.from({ length: 100 }, (_, i) => String(i)),
    )
    consumer.close()

    // The drain persisted the cursors: the next node sends nothing that was acknowledged.
    await nextNodeSendsOnlyNew(t, prefix, userId, 'v4 websocket')
  })
}

test('a drain that cannot finish ends within drainTimeoutMs, exit code 1', async t => {
  const frozen = await startRedis()
  t.teardown(() => frozen.stop())
  const cli = await startCli(t, {
    workers: 0,
    env: {
      SNAPPER_REDIS: frozen.url,
      SNAPPER_TOKEN_SECRETS: TEST_SECRET,
      SNAPPER_DRAIN_TIMEOUT_MS: '1500',
      SNAPPER_DRAIN_SPREAD_MS: '0',
    },
  })
  const consumer = connectConsumer('v4 websocket', cli.ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.close())
  await consumer.opened()
  frozen.signal('SIGSTOP') // Redis hangs: cursors cannot be written
  t.teardown(() => frozen.signal('SIGCONT'))
  const started = Date.now()
  cli.signal('SIGTERM')
  t.is(await cli.exited, 1)
  t.true(Date.now() - started < 4000)
  t.regex(cli.output(), /drain timed out/)
})
