/**
 * Escalation across whole processes (`snapper start --workers 0`, twice, on
 * one Redis): each unacknowledged tracked message reaches the webhook once;
 * a node killed (SIGKILL) while it holds escalations, one of them in the
 * middle of its request, loses none: the other node sends them, once each.
 */
import test, { type ExecutionContext } from 'ava'
import { userRoom } from '../../src/redis/keys.js'
import { sample } from '../admin/harness.js'
import { call, connectProducer, newUserId } from '../helpers/broker.js'
import { eventually, holdsFor } from '../helpers/eventually.js'
import { startCli, type RunningCli } from '../helpers/cli.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { isSignedBy, startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook.js'

const SECRET = 'escalation-e2e-secret'
const WEBHOOK_SECRET = 'escalation-webhook-secret'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

function startNode(t: ExecutionContext, receiver: WebhookReceiver, prefix: string): Promise<RunningCli> {
  return startCli(t, {
    workers: 0,
    env: {
      SNAPPER_REDIS: server.url,
      SNAPPER_REDIS_PREFIX: prefix,
      SNAPPER_TOKEN_SECRETS: SECRET,
      SNAPPER_ESCALATION_WEBHOOK_URL: receiver.url,
      SNAPPER_ESCALATION_WEBHOOK_SECRET: WEBHOOK_SECRET,
      SNAPPER_ESCALATION_TIMEOUT_MS: '1000',
      SNAPPER_ESCALATION_POLL_MS: '50',
      SNAPPER_DRAIN_SPREAD_MS: '0',
    },
  })
}

/** Tracks `count` messages to rooms nobody is in; resolves with their ids. */
async function trackUnseen(port: number, t: ExecutionContext, count: number, escalateAfterMs: number) {
  const producer = await connectProducer(t, port, SECRET)
  const tracked = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      call(producer.request('track', [userRoom(newUserId()), `unseen ${i}`, { escalateAfterMs }])),
    ),
  )
  return (tracked as { id: string }[]).map(({ id }) => id)
}

const metric = async (cli: RunningCli, series: string): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${cli.ports.admin}/metrics`)).text()
  return sample(text, series) ?? 0
}

test('two nodes: every unacknowledged tracked message reaches the webhook once, signed', async t => {
  const receiver = await startWebhookReceiver(t)
  const prefix = uniquePrefix()
  const [a, b] = await Promise.all([startNode(t, receiver, prefix), startNode(t, receiver, prefix)])
  const ids = [
    ...(await trackUnseen(a.ports.producer, t, 20, 300)),
    ...(await trackUnseen(b.ports.producer, t, 20, 500)),
  ]
  await receiver.waitForDelivered(40)
  await holdsFor(() => receiver.requests.length === 40, 500, 'no second copy')
  t.deepEqual(receiver.requests.map(r => r.json.id).sort(), ids.sort())
  t.true(receiver.requests.every(r => isSignedBy(WEBHOOK_SECRET, r)))
  const sentCount = async (): Promise<number> =>
    (await metric(a, 'snapper_escalations_total{result="sent"}')) +
    (await metric(b, 'snapper_escalations_total{result="sent"}'))
  // A node counts a send once the webhook's answer is back: after the receiver saw the request.
  const sent = await eventually(
    async () => {
      const count = await sentCount()
      return count >= 40 && count
    },
    { what: 'every send counted in /metrics' },
  )
  t.is(sent, 40, 'counted in /metrics, once across both nodes')
})

test('the node holding escalations is killed, one request in flight: the other node sends each once', async t => {
  const receiver = await startWebhookReceiver(t)
  let first = true
  receiver.answer = () => {
    if (!first) return 200
    first = false
    return 'hang' // the killed node's request: it never learns the answer
  }
  const prefix = uniquePrefix()
  const a = await startNode(t, receiver, prefix)
  const later = await trackUnseen(a.ports.producer, t, 3, 4000) // due after a is gone
  const soon = await trackUnseen(a.ports.producer, t, 5, 200) // a claims these
  await receiver.waitForDelivered(4, 5000) // a sent four, the fifth hangs
  // Killed once a has recorded those four: between a 2xx and that record, a death means a second copy.
  await eventually(async () => (await metric(a, 'snapper_escalations_total{result="sent"}')) === 4, {
    timeoutMs: 5000,
  })
  t.is(receiver.requests.length, 5)
  const hung = receiver.requests.find(r => !receiver.delivered.includes(r))!
  a.child.kill('SIGKILL')
  t.is(await a.exited, null)

  const b = await startNode(t, receiver, prefix)
  // b takes the hung one once a's claim (its lease: 2 × timeout + 1 s) runs out, and the three that fall due later.
  await receiver.waitForDelivered(8, 15_000)
  await holdsFor(() => receiver.requests.length === 9, 500, 'no second copy')
  const delivered = receiver.delivered.map(r => r.json.id)
  t.deepEqual([...delivered].sort(), [...soon, ...later].sort(), 'every one delivered, none twice')
  t.true(delivered.includes(hung.json.id))
  t.is(receiver.requests.length, 9, 'the hung request is the only one sent twice')
  const producer = await connectProducer(t, b.ports.producer, SECRET)
  for (const id of [...soon, ...later])
    t.like(await call(producer.request('receipt', [id])), { acked: [], escalated: true })
  t.is(await metric(b, 'snapper_escalations_total{result="sent"}'), 4)
})
