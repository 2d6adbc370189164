/**
 * A Redis that hangs with its connections open (SIGSTOP here; a swap storm,
 * a long script, CLIENT PAUSE alike) fails no command: each just waits. The
 * node's watchdog PING (redisPingIntervalMs) is what notices, and from then
 * on what needs Redis is refused at once, as while it is down, instead of
 * waiting for it: admin routes and new consumer sessions get 503 with
 * Retry-After. SIGCONT, and everything is served again.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { startNode, type RunningNode } from '../../src/cli/node.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { newUserId, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, within } from '../helpers/eventually.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'

const tokens = new Tokens([TEST_SECRET])
const PRODUCER = {
  authorization: `Bearer ${tokens.sign({ id: 'http' })}`,
  'content-type': 'application/json',
}

async function stalledNode(t: import('ava').ExecutionContext, overrides: Partial<Config> = {}) {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const config: Config = {
    ...defaults,
    redis: { kind: 'standalone', url: redis.url },
    redisPrefix: uniquePrefix(),
    tokenSecrets: [TEST_SECRET],
    drainSpreadMs: 0,
    drainTimeoutMs: 3000,
    redisPingIntervalMs: 200,
    consumerRetryAfterMs: 2500,
    ...overrides,
  }
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  // SIGCONT first: a drain against a stopped Redis would wait for its budget.
  t.teardown(async () => {
    redis.signal('SIGCONT')
    await node.stop()
  })
  return { redis, node, config }
}

interface Answer {
  readonly status: number
  readonly retryAfter: string | null
  readonly body: string
  readonly tookMs: number
}

/** A request that a client gives up on after 10 s (then: status 0). */
async function ask(url: string, init: RequestInit = {}): Promise<Answer> {
  const started = Date.now()
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) })
    const body = await res.text()
    return {
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      body,
      tookMs: Date.now() - started,
    }
  } catch {
    return { status: 0, retryAfter: null, body: '', tookMs: Date.now() - started }
  }
}

function entryPoints(node: RunningNode): Record<string, () => Promise<Answer>> {
  const admin = `http://127.0.0.1:${node.ports.admin}`
  const gateway = `http://127.0.0.1:${node.ports.gateway}`
  const post = (path: string, body: unknown) => () =>
    ask(`${admin}${path}`, { method: 'POST', headers: PRODUCER, body: JSON.stringify(body) })
  return {
    'GET /stats': () => ask(`${admin}/stats?token=${tokens.sign({ name: 'snapper' })}`),
    'GET /v1/users/:userId/consumers': () => ask(`${admin}/v1/users/u1/consumers`, { headers: PRODUCER }),
    'POST /v1/publish': post('/v1/publish', { room: 'stalled', message: 'm' }),
    'POST /v1/rooms/:room/subscribe': post('/v1/rooms/stalled/subscribe', { consumerId: 'c1' }),
    'POST /v1/track': post('/v1/track', { room: 'stalled', message: 'm' }),
    'polling handshake': () =>
      ask(`${gateway}/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId: newUserId() })}`),
  }
}

async function stopped(redis: RedisServer, node: RunningNode): Promise<void> {
  redis.signal('SIGSTOP')
  await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see Redis stalled' })
}

test('once the watchdog sees Redis stalled, admin routes and handshakes are refused at once with 503 and Retry-After, and served again after it', async t => {
  const { redis, node } = await stalledNode(t)
  await stopped(redis, node)
  for (const [name, request] of Object.entries(entryPoints(node))) {
    const answer = await request()
    t.is(answer.status, 503, `${name}: ${JSON.stringify(answer)}`)
    t.true(answer.tookMs < 1000, `${name} answered after ${answer.tookMs} ms`)
    t.truthy(answer.retryAfter, `${name} says when to come back`)
    if (name === 'polling handshake') t.regex(answer.body, /"retryAfterMs":2500/)
    else t.regex(answer.body, /"STORE_UNAVAILABLE"/)
  }
  const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.close())
  await t.throwsAsync(within(consumer.opened(), 3000, 'a websocket handshake to be refused'))

  redis.signal('SIGCONT')
  await eventually(() => node.redisWatchdog.isUp, { what: 'the watchdog to see Redis again' })
  const served = entryPoints(node)
  t.is((await served['GET /v1/users/:userId/consumers']!()).status, 200)
  t.is((await served['POST /v1/publish']!()).status, 200)
  t.is((await served['polling handshake']!()).status, 200)
})

test('admin requests already waiting when Redis stalls are answered 503 after adminRedisTimeoutMs, a write saying it may still be done; it is, once, when Redis answers', async t => {
  // The watchdog PINGs far too rarely to see it: only the request's own bound answers.
  const { redis, node } = await stalledNode(t, { redisPingIntervalMs: 60_000, adminRedisTimeoutMs: 1500 })
  const requests = entryPoints(node)
  delete requests['polling handshake']
  redis.signal('SIGSTOP')
  const answers = await Promise.all(
    Object.entries(requests).map(async ([name, request]) => [name, await request()] as const),
  )
  for (const [name, answer] of answers) {
    t.is(answer.status, 503, `${name}: ${JSON.stringify(answer)}`)
    t.true(answer.tookMs >= 1400 && answer.tookMs < 3000, `${name} answered after ${answer.tookMs} ms`)
    t.is(answer.retryAfter, '1', name)
    const { data } = (JSON.parse(answer.body) as { error: { data: { code: string; reason: string } } }).error
    t.is(data.code, 'STORE_UNAVAILABLE', name)
    if (name.startsWith('POST'))
      t.is(
        data.reason,
        'Redis did not answer within 1500 ms (adminRedisTimeoutMs): this may still be done once it does',
        name,
      )
    else t.is(data.reason, 'Redis did not answer within 1500 ms (adminRedisTimeoutMs)', name)
  }
  redis.signal('SIGCONT')
  const client = redis.client()
  const log = node.core.keys.room('stalled').log
  // The publish and the tracked message that were answered 503 are stored all the same, each once.
  await eventually(async () => (await client.xlen(log)) === 2, { what: 'the two messages to be stored' })
  t.is((await requests['POST /v1/publish']!()).status, 200)
  await eventually(async () => (await client.xlen(log)) === 3, { what: 'the third message to be stored' })
})

test('a Redis the watchdog saw down serves as soon as its connection is ready again, not at the next PING; a stall after it is refused again', async t => {
  const { redis, node } = await stalledNode(t, { redisPingIntervalMs: 1000 })
  await redis.kill('SIGKILL')
  await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see Redis down' })
  await redis.restart()
  await eventually(() => node.core.redis.commands.status === 'ready', { what: 'the connection to be back' })
  t.true(node.core.redis.isReady(), 'takes commands before the next PING')
  await eventually(() => node.redisWatchdog.isUp, { what: 'the next PING to be answered' })
  await stopped(redis, node)
  const { 'GET /v1/users/:userId/consumers': consumers } = entryPoints(node)
  const refused = await consumers!()
  t.is(refused.status, 503)
  t.true(refused.tookMs < 1000, `answered after ${refused.tookMs} ms`)
})
