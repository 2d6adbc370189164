/**
 * Escalation against a real Redis and a real HTTP receiver: two escalators
 * (two nodes' worth of Redis connections) share the work, each unacknowledged
 * tracked message is POSTed once, signed; failures are retried with backoff,
 * then abandoned. The same through whole processes, one of them killed, is in
 * test/e2e/escalation.test.ts.
 */
import test, { type ExecutionContext } from 'ava'
import { createBrokerCore, type BrokerCore } from '../../src/broker/core.js'
import { Escalator, escalatorOptions } from '../../src/broker/escalation.js'
import { formatTrackId } from '../../src/broker/tracking.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { isSnapperError } from '../../src/errors.js'
import { silentLogger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { eventually, holdsFor } from '../helpers/eventually.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { isSignedBy, startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook.js'

const SECRET = 'webhook-secret'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

/** A broker core and an escalator on a connection of their own (one node's worth), stopped with the test. */
async function startEscalatingCore(
  t: ExecutionContext,
  config: Config,
): Promise<{ core: BrokerCore; escalator: Escalator }> {
  const redis = createRedisClients(config.redis, silentLogger)
  await redis.connect(5000)
  const core = createBrokerCore(config, redis, silentLogger)
  const escalator = new Escalator(redis, core.keys, escalatorOptions(config), silentLogger)
  escalator.start()
  t.teardown(async () => {
    await escalator.stop()
    await redis.quit()
  })
  return { core, escalator }
}

function configFor(receiver: WebhookReceiver, overrides: Partial<Config> = {}): Config {
  return {
    ...defaults,
    redis: { kind: 'standalone', url: server.url },
    redisPrefix: uniquePrefix(),
    escalationWebhookUrl: receiver.url,
    escalationWebhookSecret: SECRET,
    escalationPollMs: 20,
    escalationTimeoutMs: 1000,
    ...overrides,
  }
}

test('two nodes send each unacknowledged message once, signed, and its receipt says escalated', async t => {
  const receiver = await startWebhookReceiver(t)
  const config = configFor(receiver)
  const a = await startEscalatingCore(t, config)
  const b = await startEscalatingCore(t, config)
  const started = Date.now()
  const ids = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      (i % 2 ? a : b).core.producerApi.track('projects/1', `m${i}`, 100 + 10 * i),
    ),
  )
  await receiver.waitForDelivered(30)
  await holdsFor(() => receiver.requests.length === 30, 300, 'no second copy')
  t.deepEqual(receiver.requests.map(r => r.json.id).sort(), [...ids].sort())
  t.is(a.escalator.counters.sent + b.escalator.counters.sent, 30)
  for (const request of receiver.requests) {
    t.true(isSignedBy(SECRET, request), 'signed with escalationWebhookSecret')
    const i = ids.indexOf(request.json.id)
    t.like(request.json, { room: 'projects/1', message: `m${i}` })
    t.true(request.json.publishedAt >= started - 1000 && request.json.publishedAt <= Date.now())
    t.true(request.at - request.json.publishedAt >= 100 + 10 * i - 50, 'not before escalateAfterMs')
  }
  t.false(isSignedBy('another-secret', receiver.requests[0]!))
  t.deepEqual(await a.core.producerApi.receipt(ids[0]!), { acked: [], moreAcks: 0, escalated: true })
})

test('a message acknowledged before escalateAfterMs is not escalated', async t => {
  const receiver = await startWebhookReceiver(t)
  const { core, escalator } = await startEscalatingCore(t, configFor(receiver))
  const id = await core.producerApi.track('r', 'seen in time', 300)
  const { log } = core
  const [entry] = await log.read('r', { ms: 0, seq: 0 }, 10)
  await core.tracking.recordAcks('w.consumer1', '55a07f2dee06c78e1357b0ad', [entry!], Date.now())
  await eventually(() => escalator.counters.acknowledged === 1, { timeoutMs: 5000 })
  t.is(receiver.requests.length, 0)
  const receipt = await core.producerApi.receipt(id)
  t.like(receipt, { escalated: false, acked: [{ consumerId: 'w.consumer1', platform: 'web' }] })
})

test('the webhook down (no answer, then 503) then up: delivered once, the failures counted', async t => {
  const receiver = await startWebhookReceiver(t)
  const { core, escalator } = await startEscalatingCore(t, configFor(receiver, { escalationTimeoutMs: 300 }))
  const answers: ('hang' | number)[] = ['hang', 503]
  receiver.answer = () => answers.shift() ?? 200
  const id = await core.producerApi.track('r', 'urgent', 50)
  await receiver.waitForDelivered(1, 10_000)
  await holdsFor(() => receiver.requests.length === 3, 300, 'nothing after the delivery')
  t.deepEqual(
    receiver.requests.map(r => r.json.id),
    [id, id, id],
  )
  t.true(receiver.requests[2]!.at - receiver.requests[1]!.at >= 1500, 'backoff: 2 s after the second failure')
  t.like(escalator.counters, { sent: 1, failed: 2, abandoned: 0 })
  t.true((await core.producerApi.receipt(id)).escalated)
})

/**
 * Two escalations, the first one's request hanging (due at 50 ms) and the
 * next due at 300 ms: resolves with how long after the tracks the next one
 * was sent, once it was, having checked that both went in that order.
 */
async function nextAfterHanging(t: ExecutionContext, overrides: Partial<Config>): Promise<number> {
  const receiver = await startWebhookReceiver(t)
  const { core } = await startEscalatingCore(t, configFor(receiver, overrides))
  const answers: ('hang' | number)[] = ['hang']
  receiver.answer = () => answers.shift() ?? 200
  const started = Date.now()
  const hanging = await core.producerApi.track('r', 'its request hangs', 50)
  const next = await core.producerApi.track('r', 'falls due meanwhile', 300)
  await receiver.waitForDelivered(1, 10_000)
  const [first, second] = receiver.requests
  t.deepEqual([first?.json.id, second?.json.id], [hanging, next])
  return second!.at - started
}

test('a webhook request that hangs holds back no other escalation: the next one goes when it falls due', async t => {
  const sentAfterMs = await nextAfterHanging(t, { escalationTimeoutMs: 3000 })
  // It went within a poll of its due time, not once the hanging request timed out (3 s).
  t.true(sentAfterMs < 1300, `sent ${sentAfterMs} ms after the track, due at 300 ms`)
})

test('escalationMaxInFlight 1: one hanging request makes the next due escalation wait for its timeout', async t => {
  const sentAfterMs = await nextAfterHanging(t, { escalationTimeoutMs: 1500, escalationMaxInFlight: 1 })
  t.true(sentAfterMs >= 1500, `sent ${sentAfterMs} ms after the track: not before the timeout`)
})

test('a webhook that keeps failing is abandoned after escalationRetrySec', async t => {
  const receiver = await startWebhookReceiver(t)
  const { core, escalator } = await startEscalatingCore(t, configFor(receiver, { escalationRetrySec: 1 }))
  receiver.answer = () => 500
  const id = await core.producerApi.track('r', 'lost cause', 10)
  await eventually(() => escalator.counters.abandoned === 1, { timeoutMs: 5000 })
  t.is(receiver.requests.length, 2, 'at once, then 1 s later; then the window is over')
  t.false((await core.producerApi.receipt(id)).escalated)
  t.deepEqual(await core.redis.commands.zcard(core.keys.escalations.due), 0)
})

test('retries stop at escalationRetrySec: the last attempt comes at its end, not a backoff step past it', async t => {
  const receiver = await startWebhookReceiver(t)
  const { core, escalator } = await startEscalatingCore(t, configFor(receiver, { escalationRetrySec: 2 }))
  receiver.answer = () => 500
  const tracked = Date.now()
  await core.producerApi.track('r', 'lost cause', 10)
  await eventually(() => escalator.counters.abandoned === 1, { timeoutMs: 8000 })
  // From when it fell due, not from the first attempt: that one may come up to a poll late.
  const times = receiver.requests.map(request => request.at - tracked - 10)
  t.is(times.length, 3, `when due, 1 s later, then at the window's end: ${times.join(', ')} ms`)
  t.true(times[2]! >= 1900 && times[2]! <= 2600, `the last one at ${times[2]} ms, at the 2 s window's end`)
})

test('an escalation that falls due as its message expires is still sent, and retried', async t => {
  const receiver = await startWebhookReceiver(t)
  const config = configFor(receiver, { messageTtlSec: 2, escalationRetrySec: 5 })
  const { core, escalator } = await startEscalatingCore(t, config)
  const answers = [500]
  receiver.answer = () => answers.shift() ?? 200
  const id = await core.producerApi.track('r', 'at the end of its life', 1999)
  await receiver.waitForDelivered(1, 8000)
  t.deepEqual(
    receiver.requests.map(r => r.json.id),
    [id, id],
    'the failed attempt, then the one retried a second later, past the message life',
  )
  await eventually(() => escalator.counters.sent === 1) // counted once the answer is in
  t.like(escalator.counters, { failed: 1, abandoned: 0 })
})

test("a webhook URL's user and password go as Basic authorization, not in the URL", async t => {
  const receiver = await startWebhookReceiver(t)
  const url = receiver.url.replace('http://', 'http://hook%20user:p%40ss@')
  const { core, escalator } = await startEscalatingCore(t, configFor(receiver, { escalationWebhookUrl: url }))
  await core.producerApi.track('r', 'with credentials', 10)
  await receiver.waitForDelivered(1, 5000)
  const [request] = receiver.requests
  t.is(request!.authorization, `Basic ${Buffer.from('hook user:p@ss').toString('base64')}`)
  t.is(request!.path, '/escalations')
  await eventually(() => escalator.counters.sent === 1) // counted once the answer is in
  t.is(escalator.counters.failed, 0)
})

/**
 * What escalation_schedule-2.lua of the version before expiry (9a1ea17) wrote: the due time in
 * the sorted set, the message, due time and attempts in the hash, and no expiry on either key.
 */
async function scheduleAsOlderVersion(core: BrokerCore, id: string, delayMs: number, message: string) {
  const { due, info } = core.keys.escalations
  const stamp = String(Date.now() + delayMs)
  await core.redis.commands.zadd(due, stamp, id)
  await core.redis.commands.hset(info, `m:${id}`, message, `d:${id}`, stamp, `n:${id}`, '0')
}

test('a rolling upgrade: escalations an older version scheduled, before or after a newer node scheduled a shorter one, are sent', async t => {
  const receiver = await startWebhookReceiver(t)
  // A window of 1 s + 20 ms + 2 x 200 ms + 1 s + 200 ms: the newer node's keys live 2.6 s past its escalation.
  const config = configFor(receiver, { escalationRetrySec: 1, escalationTimeoutMs: 200 })
  const { core } = await startEscalatingCore(t, config)
  const before = await core.producerApi.track('r', 'older, scheduled before')
  await scheduleAsOlderVersion(core, before, 4000, 'older, scheduled before')
  const newer = await core.producerApi.track('r', 'newer, 10 ms', 10)
  const after = await core.producerApi.track('r', 'older, scheduled after')
  await scheduleAsOlderVersion(core, after, 4500, 'older, scheduled after')
  // By first arrival: a request answered after escalationTimeoutMs (200 ms here, a loaded machine's) counts as
  // failed and comes again, as README "Escalation" tells receivers (they deduplicate by id).
  const ids = (): unknown[] => [...new Set(receiver.requests.map(r => r.json.id))]
  await eventually(() => ids().length === 3, { timeoutMs: 10_000 })
  t.deepEqual(ids(), [newer, before, after])
})

test('an escalation whose message was never stored sends nothing', async t => {
  const receiver = await startWebhookReceiver(t)
  const { core, escalator } = await startEscalatingCore(t, configFor(receiver, { escalationRetrySec: 1 }))
  const { due, info } = core.keys.escalations
  await core.redis.commands.escalationSchedule(
    due,
    info,
    formatTrackId('r', 'A'.repeat(16)),
    10,
    'never stored',
    60_000,
  )
  await eventually(() => escalator.counters.abandoned === 1, { timeoutMs: 5000 })
  t.is(receiver.requests.length, 0)
})

test('track refuses escalateAfterMs without a webhook, or out of range; receipt of an unknown id', async t => {
  const receiver = await startWebhookReceiver(t)
  const { core } = await startEscalatingCore(t, configFor(receiver))
  const redis = createRedisClients({ kind: 'standalone', url: server.url }, silentLogger)
  t.teardown(() => redis.quit())
  const plain = createBrokerCore({ ...defaults, redisPrefix: uniquePrefix() }, redis, silentLogger)
  const code = async (promise: Promise<unknown>) =>
    promise.then(
      () => 'resolved',
      (err: unknown) => (isSnapperError(err) ? err.code : String(err)),
    )
  t.is(await code(plain.producerApi.track('r', 'm', 1000)), 'NO_ESCALATION')
  t.regex(await plain.producerApi.track('r', 'm'), /^[\w-]{16}\.cg$/, 'without escalation it is fine')
  for (const bad of [0, -1, 1.5, defaults.messageTtlSec * 1000])
    t.is(await code(core.producerApi.track('r', 'm', bad)), 'INVALID_PARAMS', String(bad))
  t.is(await code(core.producerApi.receipt('nope')), 'UNKNOWN_ID')
  t.is(await code(core.producerApi.receipt(formatTrackId('r', 'B'.repeat(16)))), 'UNKNOWN_ID')
})
