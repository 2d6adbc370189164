/**
 * The HTTP side of tracked messages: POST /v1/track and GET /v1/receipts/:id,
 * with the TCP methods' checks and error codes.
 */
import test from 'ava'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, errorBody, startAdminApp, TOKENS } from './harness.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const INVALID_PARAMS = errorBody(-32602, 'Invalid params', 'INVALID_PARAMS')

test('track: stored in the room log like a publish, answered with an id whose receipt is empty so far', async t => {
  const h = await startAdminApp(t, server.url)
  const answer = await call(`${h.base}/v1/track`, {
    token: TOKENS.producer,
    body: { room: 'projects/1', message: 'deploy done' },
  })
  t.is(answer.status, 200)
  const { id } = (answer.json as { result: { id: string } }).result
  t.regex(id, /^[\w-]{16}\.[\w-]+$/)
  t.deepEqual(await h.roomLog('projects/1'), ['deploy done'])
  const receipt = await call(`${h.base}/v1/receipts/${encodeURIComponent(id)}`, { token: TOKENS.producer })
  t.is(receipt.status, 200)
  t.deepEqual(receipt.json, { result: { acked: [], moreAcks: 0, escalated: false } })
  t.is(receipt.headers.get('cache-control'), 'no-store')
  const operator = await call(`${h.base}/v1/receipts/${id}`, { token: TOKENS.operator })
  t.deepEqual(operator.json, receipt.json, 'the dashboard reads receipts with the operator token')
})

test('track: bad bodies and options are 400 INVALID_PARAMS; escalateAfterMs without a webhook is NO_ESCALATION', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { maxMessageBytes: 16 } })
  const bad = [
    [{ room: 'r', message: 'm' }],
    { room: 'r' },
    { room: '', message: 'm' },
    { room: 'r', message: 'x'.repeat(17) },
    { room: 'r', message: 'm', escalateAfter: 1000 },
    { room: 'r', message: 'm', escalateAfterMs: '1000' },
  ]
  for (const body of bad) {
    const answer = await call(`${h.base}/v1/track`, { token: TOKENS.producer, body })
    t.is(answer.status, 400, JSON.stringify(body))
    t.deepEqual(answer.json, INVALID_PARAMS, JSON.stringify(body))
  }
  const notJson = await call(`${h.base}/v1/track`, { token: TOKENS.producer, raw: 'text' })
  t.deepEqual(notJson.json, errorBody(-32700, 'Parse error', 'PARSE_ERROR'))
  const answer = await call(`${h.base}/v1/track`, {
    token: TOKENS.producer,
    body: { room: 'r', message: 'm', escalateAfterMs: 1000 },
  })
  t.is(answer.status, 400)
  t.deepEqual(answer.json, errorBody(-32008, 'No escalation webhook configured', 'NO_ESCALATION'))
  t.deepEqual(await h.roomLog('r'), [], 'nothing refused was stored')
})

test('track with escalateAfterMs, a webhook configured: out-of-range values are refused, a good one schedules it', async t => {
  const h = await startAdminApp(t, server.url, {
    overrides: {
      escalationWebhookUrl: 'http://127.0.0.1:9/hook',
      escalationWebhookSecret: 's',
      messageTtlSec: 60,
    },
  })
  for (const escalateAfterMs of [0, -5, 1.5, 60_000]) {
    const answer = await call(`${h.base}/v1/track`, {
      token: TOKENS.producer,
      body: { room: 'r', message: 'm', escalateAfterMs },
    })
    t.deepEqual(answer.json, INVALID_PARAMS, String(escalateAfterMs))
  }
  const answer = await call(`${h.base}/v1/track`, {
    token: TOKENS.producer,
    body: { room: 'r', message: 'm', escalateAfterMs: 59_999 },
  })
  const { id } = (answer.json as { result: { id: string } }).result
  t.deepEqual(await h.core.redis.commands.zrange(h.core.keys.escalations.due, '0', '-1'), [id])
})

test('receipts: an unknown or expired id is 404 UNKNOWN_ID; no token is 401', async t => {
  const h = await startAdminApp(t, server.url)
  for (const id of ['nope', 'AAAAAAAAAAAAAAAA.cg', `${'A'.repeat(16)}.not base64`]) {
    const answer = await call(`${h.base}/v1/receipts/${encodeURIComponent(id)}`, { token: TOKENS.producer })
    t.is(answer.status, 404, id)
    t.deepEqual(answer.json, errorBody(-32007, 'Unknown or expired id', 'UNKNOWN_ID'))
  }
  const tooLong = await call(`${h.base}/v1/receipts/${'x'.repeat(4000)}`, { token: TOKENS.producer })
  t.deepEqual(tooLong.json, INVALID_PARAMS)
  t.is((await call(`${h.base}/v1/receipts/nope`)).status, 401)
  t.is((await call(`${h.base}/v1/receipts/nope`, { token: TOKENS.consumer })).status, 400)
})
