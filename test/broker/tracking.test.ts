/**
 * Tracked messages end to end inside whole nodes (gateway, producer listener,
 * Redis): real consumers (engine.io-client 6) acknowledge, the receipts are
 * readable on any node; the delivery latency histogram counts what was
 * delivered; a message acknowledged in time is not escalated.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import type { Entry } from '../../src/broker/entry.js'
import { parseTrackId } from '../../src/broker/tracking.js'
import { scrape } from '../../src/metrics/index.js'
import { userRoom } from '../../src/redis/keys.js'
import { sample } from '../admin/harness.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { eventually, holdsFor } from '../helpers/eventually.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis } from '../helpers/redis.js'
import { TOPOLOGIES, redisPerFile } from '../helpers/topology.js'
import { startWebhookReceiver } from '../helpers/webhook.js'

const redis = redisPerFile(test)
const tokens = new Tokens([TEST_SECRET])

interface Receipt {
  acked: { consumerId: string; userId: string; platform: string; ackedAt: number }[]
  moreAcks: number
  escalated: boolean
}

function consumer(t: { teardown(fn: () => void): void }, port: number, userId: string, source: string) {
  const connected = connectConsumer('v4 websocket', port, tokens.sign({ userId, source }))
  t.teardown(() => connected.close())
  return connected
}

for (const topology of TOPOLOGIES) {
  test(`${topology}: a tracked message's receipt lists every consumer that acked it, on any node, within a second`, async t => {
    const a = await startBroker(t, redis.target(topology))
    const b = await startBroker(t, redis.target(topology), { redisPrefix: a.config.redisPrefix })
    const userId = newUserId()
    const web = consumer(t, a.ports.gateway, userId, 'web')
    const ios = consumer(t, b.ports.gateway, userId, 'ios')
    await Promise.all([web.opened(), ios.opened()])
    const [producerA, producerB] = await Promise.all([
      connectProducer(t, a.ports.producer),
      connectProducer(t, b.ports.producer),
    ])
    const started = Date.now()
    const { id } = (await call(producerA.request('track', [userRoom(userId), 'did you see it?']))) as {
      id: string
    }
    await Promise.all([web.waitFor(1), ios.waitFor(1)])
    const delivered = Date.now()
    let receipt: Receipt | undefined
    await eventually(
      async () => {
        receipt = (await call(producerB.request('receipt', [id]))) as Receipt
        return receipt.acked.length === 2
      },
      { timeoutMs: 2000, what: 'both acks in the receipt' },
    )
    // Tens of ms alone; the bound leaves room for the rest of the suite running on the same 2 cores.
    t.true(Date.now() - delivered < 1000, `readable ${Date.now() - delivered} ms after the deliveries`)
    t.false(receipt!.escalated)
    t.deepEqual(
      receipt!.acked.map(({ consumerId, userId: user, platform }) => [consumerId, user, platform]).sort(),
      [
        [web.id, userId, 'web'],
        [ios.id, userId, 'ios'],
      ].sort(),
    )
    for (const { ackedAt } of receipt!.acked) t.true(ackedAt >= started && ackedAt <= Date.now())
    t.is(a.core.tracking.counters.receipts + b.core.tracking.counters.receipts, 2)
    t.deepEqual(web.messages, ['did you see it?'], 'delivered like any publish')
  })

  test(`${topology}: the delivery latency histogram counts every acknowledged message, by platform`, async t => {
    const node = await startBroker(t, redis.target(topology))
    const producer = await connectProducer(t, node.ports.producer)
    const consumers: TestConsumer[] = [
      ...['web', 'web', 'web'].map(source => consumer(t, node.ports.gateway, newUserId(), source)),
      ...['ios', 'ios'].map(source => consumer(t, node.ports.gateway, newUserId(), source)),
      consumer(t, node.ports.gateway, newUserId(), 'android'),
    ]
    const ids = await Promise.all(consumers.map(c => c.opened()))
    await Promise.all(ids.map(id => call(producer.joinRoom('news', id))))
    const messages = Array.from({ length: 25 }, (_, i) => `m${i}`)
    await call(
      producer.request(
        'publish',
        messages.map(message => ['news', message]),
      ),
    )
    await Promise.all(consumers.map(c => c.waitFor(messages.length)))
    const series = (name: string) => async () => sample((await scrape(node.registry)).body, name)
    const count = (platform: string) =>
      series(`snapper_delivery_latency_seconds_count{platform="${platform}"}`)
    await eventually(async () => (await series('snapper_messages_delivered_total')()) === 150, {
      timeoutMs: 2000,
    })
    t.is(await count('web')(), 75)
    t.is(await count('ios')(), 50)
    t.is(await count('android')(), 25)
    t.is(await series('snapper_delivery_latency_seconds_bucket{le="+Inf",platform="web"}')(), 75)
    const sumSec = (await series('snapper_delivery_latency_seconds_sum{platform="web"}')())!
    t.true(sumSec > 0 && sumSec < 75 * 5, `stored → acked adds up to ${sumSec} s for 75 deliveries`)
    // The send → ack histogram stays, one observation per batch.
    t.true((await series('snapper_ack_latency_seconds_count')())! >= consumers.length)
  })
}

test('a tracked message records at most trackMaxReceipts receipts; the acks past them are counted, not listed', async t => {
  const node = await startBroker(t, redis.target('standalone'), { trackMaxReceipts: 2 })
  const producer = await connectProducer(t, node.ports.producer)
  const consumers = ['web', 'ios', 'android', 'web', 'ios'].map(source =>
    consumer(t, node.ports.gateway, newUserId(), source),
  )
  const ids = await Promise.all(consumers.map(c => c.opened()))
  await Promise.all(ids.map(id => call(producer.joinRoom('town hall', id))))
  const { id } = (await call(producer.request('track', ['town hall', 'everyone, please read']))) as {
    id: string
  }
  await Promise.all(consumers.map(c => c.waitFor(1)))
  let receipt: Receipt | undefined
  await eventually(
    async () => {
      receipt = (await call(producer.request('receipt', [id]))) as Receipt
      return receipt.acked.length + receipt.moreAcks === consumers.length
    },
    { timeoutMs: 2000, what: 'every ack in the receipt' },
  )
  t.is(receipt!.acked.length, 2, 'two listed')
  t.is(receipt!.moreAcks, 3, 'three counted')
  t.true(receipt!.acked.every(({ consumerId }) => ids.includes(consumerId)))
  const metrics = (await scrape(node.registry)).body
  t.is(sample(metrics, 'snapper_receipts_total'), 2)
  t.is(sample(metrics, 'snapper_receipts_unlisted_total'), 3)
})

test('a tracked message acknowledged before escalateAfterMs is not escalated; one nobody takes is, once', async t => {
  const receiver = await startWebhookReceiver(t)
  const node = await startBroker(t, redis.target('standalone'), {
    escalationWebhookUrl: receiver.url,
    escalationWebhookSecret: 'hook-secret',
    escalationPollMs: 20,
  })
  const producer = await connectProducer(t, node.ports.producer)
  const online = newUserId()
  const present = consumer(t, node.ports.gateway, online, 'web')
  await present.opened()
  const seen = (await call(
    producer.request('track', [userRoom(online), 'seen', { escalateAfterMs: 400 }]),
  )) as {
    id: string
  }
  const offline = newUserId()
  const unseen = (await call(
    producer.request('track', [userRoom(offline), 'unseen', { escalateAfterMs: 400 }]),
  )) as { id: string }
  await present.waitFor(1)
  await receiver.waitForDelivered(1, 5000)
  await eventually(() => node.escalator!.counters.acknowledged === 1, { timeoutMs: 3000 })
  await holdsFor(() => receiver.requests.length === 1, 200, 'only the unseen one')
  t.deepEqual(
    receiver.requests.map(r => r.json),
    [
      {
        id: unseen.id,
        room: userRoom(offline),
        message: 'unseen',
        publishedAt: receiver.requests[0]!.json.publishedAt,
      },
    ],
  )
  t.like(node.escalator!.counters, { sent: 1, acknowledged: 1, failed: 0 })
  t.like(await call(producer.request('receipt', [seen.id])), { escalated: false })
  t.like(await call(producer.request('receipt', [unseen.id])), { acked: [], escalated: true })
  const metrics = (await scrape(node.registry)).body
  t.is(sample(metrics, 'snapper_escalations_total{result="sent"}'), 1)
  t.is(sample(metrics, 'snapper_escalations_total{result="acknowledged"}'), 1)
  t.is(sample(metrics, 'snapper_tracked_messages_total'), 2)
})

test('plain publishes cost no tracking: no track keys, no receipt writes', async t => {
  const node = await startBroker(t, redis.target('standalone'))
  const producer = await connectProducer(t, node.ports.producer)
  const userId = newUserId()
  const present = consumer(t, node.ports.gateway, userId, 'web')
  await present.opened()
  await call(
    producer.request(
      'publish',
      Array.from({ length: 20 }, (_, i) => [userRoom(userId), `p${i}`]),
    ),
  )
  await present.waitFor(20)
  const keys = await redis.standalone.client().keys(`${node.config.redisPrefix}:*:t:*`)
  t.deepEqual(keys, [])
  t.is(node.core.tracking.counters.receipts, 0)
})

test('a receipt write refused while Redis cannot take it is retried for trackReceiptRetrySec, then dropped', async t => {
  const own = await startRedis() // made read-only below: the other tests' Redis stays writable
  t.teardown(() => own.stop())
  const brief = await startBroker(t, own.url, { trackReceiptRetrySec: 1 })
  const patient = await startBroker(t, own.url, { redisPrefix: brief.config.redisPrefix })
  t.is(patient.config.trackReceiptRetrySec, 60, 'the default: a minute')
  const producer = await connectProducer(t, patient.ports.producer)
  const tracked = await Promise.all(
    [brief, patient].map(async node => {
      const userId = newUserId()
      const raw = new RawConsumer(node.ports.gateway, tokens.sign({ userId }))
      t.teardown(() => raw.socket.close())
      await raw.opened()
      const { id } = (await call(producer.request('track', [userRoom(userId), 'did you see it?']))) as {
        id: string
      }
      await raw.until(() => raw.batches.length === 1)
      return { userId, raw, id }
    }),
  )
  // Writes are refused with READONLY (a passing failure, as while a master fails over) for 3 s:
  // a replica of a master that is never there (port 1 on loopback) keeps its data.
  await own.client().replicaof('127.0.0.1', 1)
  for (const { raw } of tracked) raw.ack(raw.batches[0]!.id)
  await new Promise(resolve => setTimeout(resolve, 3000))
  await own.client().replicaof('NO', 'ONE')
  const [dropped, kept] = tracked as [(typeof tracked)[0], (typeof tracked)[0]]
  await eventually(
    async () => ((await call(producer.request('receipt', [kept.id]))) as Receipt).acked.length === 1,
    { timeoutMs: 5000, what: 'the ack retried past the 3 s in the receipt' },
  )
  t.like(await call(producer.request('receipt', [kept.id])), { acked: [{ userId: kept.userId }] })
  t.like(await call(producer.request('receipt', [dropped.id])), { acked: [], moreAcks: 0 })
  t.is(brief.core.tracking.counters.receipts, 0, 'given up after 1 s')
  t.is(patient.core.tracking.counters.receipts, 1)
})

test('nodes with different trackMaxReceipts list a consumer once: a message keeps the bound of its first receipt', async t => {
  const strict = await startBroker(t, redis.target('standalone'), { trackMaxReceipts: 1 })
  const roomy = await startBroker(t, redis.target('standalone'), {
    trackMaxReceipts: 5,
    redisPrefix: strict.config.redisPrefix,
  })
  const producer = await connectProducer(t, strict.ports.producer)
  const { id } = (await call(producer.request('track', ['town hall', 'everyone, please read']))) as {
    id: string
  }
  // The entry a node holds for the tracked message: its acks are written from it.
  const entry = { room: 'town hall', track: parseTrackId(id)!.nonce } as Entry
  await strict.core.tracking.recordAcks('w.first', 'u1', [entry], 1000)
  await strict.core.tracking.recordAcks('w.second', 'u2', [entry], 2000) // past strict's bound: counted
  // w.second's batch comes again on the roomy node (its first node crashed before storing its
  // cursor) and is acked again there, where 1 receipt is under the node's own bound.
  await roomy.core.tracking.recordAcks('w.second', 'u2', [entry], 3000)
  await roomy.core.tracking.recordAcks('w.third', 'u3', [entry], 4000)
  const receipt = await roomy.core.tracking.receipt(id)
  t.deepEqual(
    receipt.acked.map(({ consumerId }) => consumerId),
    ['w.first'],
    'listed: the first only (the bound of 1 that its receipt was recorded under)',
  )
  t.is(receipt.moreAcks, 3, 'counted: every later ack, w.second twice (its batch came twice)')
})
