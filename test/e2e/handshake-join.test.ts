/**
 * Two handshakes of one consumer (same token: a client's retry, the SDK's
 * polling fallback) while the node is still taking it over: the second joins
 * the first's takeover. Its open packet too waits for that take (the
 * promise of README "What happens on a connection"), it is refused the same
 * way if the take is late, and it is refused at once while the watchdog sees
 * Redis stalled, as any new session is. What the first took is let go
 * without taking the second's session with it.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import type { Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { HTTP_PRODUCER_HEADERS, newUserId, TEST_SECRET, testConfig } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, pause, within } from '../helpers/eventually.js'
import { startRedis } from '../helpers/redis.js'

const tokens = new Tokens([TEST_SECRET])

async function nodeOnRedis(t: import('ava').ExecutionContext, overrides: Partial<Config> = {}) {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const config = testConfig(redis.url, { drainTimeoutMs: 3000, consumerRetryAfterMs: 2500, ...overrides })
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  t.teardown(async () => {
    redis.signal('SIGCONT')
    await node.stop()
  })
  const admin = `http://127.0.0.1:${node.ports.admin}`
  const gateway = `http://127.0.0.1:${node.ports.gateway}`
  return { redis, node, admin, gateway }
}

interface Answer {
  readonly status: number
  readonly body: string
  /** When it was answered, in ms since `sinceMs`. */
  readonly atMs: number
}

/** A polling handshake of `token`, answered (or given up after 10 s: status 0). */
async function handshake(
  gateway: string,
  token: string,
  sinceMs: number,
  signal?: AbortSignal,
): Promise<Answer> {
  try {
    const res = await fetch(`${gateway}/websocket/?EIO=4&transport=polling&token=${token}`, {
      signal: signal ?? AbortSignal.timeout(10_000),
    })
    return { status: res.status, body: await res.text(), atMs: Date.now() - sinceMs }
  } catch {
    return { status: 0, body: '', atMs: Date.now() - sinceMs }
  }
}

function publish(admin: string, userId: string, message: string): Promise<Response> {
  return fetch(`${admin}/v1/publish`, {
    method: 'POST',
    headers: HTTP_PRODUCER_HEADERS,
    body: JSON.stringify({ room: `user${userId}`, message }),
  })
}

test('while the watchdog sees Redis stalled, a second handshake of a consumer whose takeover waits for Redis is refused at once, and nothing counts online', async t => {
  const { redis, node, admin, gateway } = await nodeOnRedis(t, {
    redisPingIntervalMs: 1000,
    redisRequestTimeoutMs: 1500,
  })
  const userId = newUserId()
  const token = tokens.sign({ userId })
  redis.signal('SIGSTOP')
  const startedAtMs = Date.now()
  const first = handshake(gateway, token, startedAtMs)
  await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see Redis stalled' })
  t.is(node.node.online, 0, 'a takeover waiting for Redis is no live consumer')
  t.is(node.node.takingOver, 1)
  // What an operator reads meanwhile (/metrics needs no Redis).
  const metrics = await (await fetch(`${admin}/metrics`)).text()
  t.regex(metrics, /^snapper_consumers_online 0$/m)
  t.regex(metrics, /^snapper_consumers_taking_over 1$/m)

  const retriedAtMs = Date.now()
  const second = await handshake(gateway, token, retriedAtMs)
  t.is(second.status, 503, JSON.stringify(second))
  t.true(second.atMs < 1000, `answered after ${second.atMs} ms`)
  t.is(second.body, '{"code":3,"message":"Storage unavailable, retry","retryAfterMs":2500}')
  // What engine.io-client@6 sees: no open, an error it reconnects after.
  const eio6 = connectConsumer('v4 websocket', node.ports.gateway, token)
  t.teardown(() => eio6.close())
  await t.throwsAsync(within(eio6.opened(), 3000, 'engine.io-client to be refused'))
  t.is((await first).status, 503)
  t.is(node.gateway.engine.sessions.size, 0)
  t.is(node.node.online, 0)

  redis.signal('SIGCONT')
  await eventually(() => node.redisWatchdog.isUp, { what: 'the watchdog to see Redis again' })
  await eventually(() => node.node.online === 0 && node.node.takingOver === 0, {
    what: 'the late takeover to be let go',
  })
  const consumer = connectConsumer('v4 websocket', node.ports.gateway, token)
  t.teardown(() => consumer.close())
  await within(consumer.opened(), 5000, 'the consumer to open again')
  t.is(node.node.online, 1)
  t.is((await publish(admin, userId, 'after')).status, 200)
  await consumer.waitFor(1, 5000)
  await pause(300) // time for a repeat to show
  t.deepEqual(consumer.messages, ['after'])
})

test('a second handshake of a consumer whose takeover waits on a slow Redis opens only once the take is done', async t => {
  const { redis, node, admin, gateway } = await nodeOnRedis(t)
  const userId = newUserId()
  const token = tokens.sign({ userId })
  const client = redis.client()
  t.teardown(() => client.quit())
  // Redis answers reads and PINGs, and holds writes (the take's script) for 1.5 s.
  await client.call('CLIENT', 'PAUSE', '1500', 'WRITE')
  const startedAtMs = Date.now()
  const firstGone = new AbortController() // the client gives up on the first and retries
  const first = handshake(gateway, token, startedAtMs, firstGone.signal)
  await pause(300)
  firstGone.abort()
  const second = handshake(gateway, token, startedAtMs)
  await pause(300)
  t.is(node.node.online, 0, 'a takeover waiting for Redis is no live consumer')
  t.is(node.node.takingOver, 1)
  t.is(node.gateway.engine.sessions.size, 0, 'no session is open before the take')
  const answered = await second
  t.is(answered.status, 200, JSON.stringify(answered))
  t.true(answered.atMs >= 1300, `opened after ${answered.atMs} ms, before the take was done`)
  t.is((await first).status, 0)
  await eventually(() => node.gateway.engine.sessions.size === 1, { what: 'the second session to stay open' })
  t.is(node.node.online, 1)

  // It is the consumer's live session: what is published to it is delivered to it.
  const { sid } = JSON.parse(answered.body.slice(1)) as { sid: string }
  const poll = fetch(`${gateway}/websocket/?EIO=4&transport=polling&token=${token}&sid=${sid}`, {
    signal: AbortSignal.timeout(5000),
  }).then(res => res.text())
  t.is((await publish(admin, userId, 'm1')).status, 200)
  t.regex(await poll, /"params":\["m1"\]/)
})

test('a handshake joining a takeover whose first handshake was refused late opens once Redis answers, and gets what is published, once', async t => {
  // The watchdog PINGs far too rarely to see it: only the handshakes' own bound answers.
  const { redis, node, admin, gateway } = await nodeOnRedis(t, {
    redisPingIntervalMs: 60_000,
    redisRequestTimeoutMs: 1500,
  })
  const userId = newUserId()
  const token = tokens.sign({ userId })
  redis.signal('SIGSTOP')
  const startedAtMs = Date.now()
  const first = handshake(gateway, token, startedAtMs)
  await pause(1700) // the first is refused at 1.5 s; its take still waits for Redis
  const retry = connectConsumer('v4 websocket', node.ports.gateway, token)
  t.teardown(() => retry.close())
  let openedAtMs: number | undefined
  void retry.opened().then(() => (openedAtMs = Date.now() - startedAtMs))
  await pause(500)
  t.is(openedAtMs, undefined, 'opened while Redis was stopped')
  const refused = await first
  t.is(refused.status, 503, JSON.stringify(refused))
  redis.signal('SIGCONT')
  await within(retry.opened(), 3000, 'the retry to open once Redis answers')
  await pause(300) // the first's takeover let go meanwhile
  t.is(node.gateway.engine.sessions.size, 1)
  t.is(node.node.online, 1)
  t.is((await publish(admin, userId, 'after')).status, 200)
  await retry.waitFor(1, 5000)
  await pause(300) // time for a repeat to show
  t.deepEqual(retry.messages, ['after'])
})

test('a handshake joining a takeover and refused late itself leaves nothing once Redis answers', async t => {
  const { redis, node, admin, gateway } = await nodeOnRedis(t, {
    redisPingIntervalMs: 60_000,
    redisRequestTimeoutMs: 1500,
    maxSessionsPerUser: 1,
  })
  const userId = newUserId()
  const token = tokens.sign({ userId })
  redis.signal('SIGSTOP')
  const startedAtMs = Date.now()
  const first = handshake(gateway, token, startedAtMs)
  await pause(500)
  const second = await handshake(gateway, token, startedAtMs)
  t.is(second.status, 503, JSON.stringify(second))
  t.true(second.atMs >= 1900 && second.atMs < 3000, `refused after ${second.atMs} ms`)
  t.is((await first).status, 503)
  t.is(node.gateway.engine.sessions.size, 0)
  redis.signal('SIGCONT')
  await eventually(() => node.node.online === 0 && node.node.takingOver === 0, {
    what: 'the takeover to be let go',
  })
  await pause(300)
  t.is(node.gateway.engine.sessions.size, 0)
  const counted = await fetch(`${admin}/v1/users/${userId}/consumers`, { headers: HTTP_PRODUCER_HEADERS })
  t.is(await counted.text(), '{"result":{"length":0,"android":0,"ios":0,"web":0}}')
  // Neither handshake holds the user's one place (maxSessionsPerUser): another consumer of the user opens.
  const other = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId }, 3600))
  t.teardown(() => other.close())
  await within(other.opened(), 5000, "another of the user's consumers to open")
})
