import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { eventually } from '../helpers/eventually.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, errorBody, startAdminApp, TOKENS } from './harness.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const UNAUTHORIZED = (reason: string) => errorBody(401, 'Unauthorized', 'UNAUTHORIZED', { reason })

test('stats: 401 without a token, with a wrong secret or garbage; 400 with a valid token of another role', async t => {
  const h = await startAdminApp(t, server.url)
  const none = await call(`${h.base}/stats`)
  t.is(none.status, 401)
  t.deepEqual(
    none.json,
    UNAUTHORIZED('a token with name "snapper" is required (?token= or Authorization: Bearer)'),
  )

  const wrongSecret = new Tokens(['not-ours']).signOperator()
  const wrong = await call(`${h.base}/stats?token=${wrongSecret}`)
  t.is(wrong.status, 401)
  t.deepEqual(wrong.json, UNAUTHORIZED('Error: Invalid signature'))
  const garbage = await call(`${h.base}/stats?token=garbage`)
  t.is(garbage.status, 401)
  t.deepEqual(
    garbage.json,
    UNAUTHORIZED('Error: Malformed token: not a compact JWS (header.payload.signature)'),
  )

  const roles: [string, string][] = [
    [TOKENS.producer, 'Error: Not an operator token: name "snapper" is required'],
    [TOKENS.consumer, 'Error: Not an operator token: name "snapper" is required'],
    [TOKENS.operatorWithUserId, 'Error: Not an operator token: an operator token cannot carry userId'],
  ]
  for (const [token, reason] of roles) {
    const answer = await call(`${h.base}/stats`, { token })
    t.is(answer.status, 400)
    t.deepEqual(answer.json, errorBody(400, 'Token not allowed here', 'WRONG_ROLE', { reason }))
  }
})

test('stats: ?token= given twice is 401 saying so, even with the valid token both times', async t => {
  const h = await startAdminApp(t, server.url)
  for (const query of ['token=a&token=b', `token=${TOKENS.operator}&token=${TOKENS.operator}`]) {
    const answer = await call(`${h.base}/stats?${query}`)
    t.is(answer.status, 401, query)
    t.deepEqual(answer.json, UNAUTHORIZED('Error: ?token= given 2 times: give one token'), query)
  }
  t.is((await call(`${h.base}/stats?token=${TOKENS.operator}`)).status, 200, 'once: served')
})

test('stats with {name: "snapper"} (?token= or Bearer): the original fields, HTTP calls counted at once, every node', async t => {
  const h = await startAdminApp(t, server.url)
  await call(`${h.base}/v1/publish`, {
    token: TOKENS.producer,
    body: [
      { room: 'a', message: '1' },
      { room: 'b', message: '2' },
    ],
  })
  // total.rooms counts rooms joined, as the original did: 'a' and 'c', not 'b' (only published to).
  for (const room of ['a', 'c', 'a'])
    await call(`${h.base}/v1/rooms/${room}/subscribe`, {
      token: TOKENS.producer,
      body: { consumerId: 't.x' },
    })
  const { redis, keys } = h.core
  await h.core.stats.report('host:7701', 3)
  await redis.commands.hset(keys.statsNodes, 'host:7702', `5 ${Date.now() - h.config.nodeTtlMs - 1000}`)
  // Crashed long ago (past deadNodeRetentionSec, a day): no longer listed, its report dropped.
  await redis.commands.hset(keys.statsNodes, 'pod-gone:7701', `4 ${Date.now() - 86_400_000 - 1000}`)

  const byQuery = await call(`${h.base}/stats?token=${TOKENS.operator}`)
  t.is(byQuery.status, 200)
  const body = byQuery.json as Record<string, unknown>
  t.like(body, {
    server: 'snapper',
    stats: {
      total: { producerMessages: 2, consumerMessages: 0, consumers: 0, rooms: 2 },
      online: 3,
      current: { 'host:7701': 3 },
    },
  })
  for (const field of ['version', 'net', 'serverId', 'mem']) t.true(field in body, field)
  t.false('node' in body, 'no node in this process')
  const nodes = body.nodes as { name: string; online: number; isAlive: boolean; reportedMsAgo: number }[]
  t.deepEqual(
    nodes.map(({ name, online, isAlive }) => ({ name, online, isAlive })),
    [
      { name: 'host:7701', online: 3, isAlive: true },
      { name: 'host:7702', online: 5, isAlive: false },
    ],
  )
  t.true(nodes[0]!.reportedMsAgo >= 0)
  await eventually(async () => !(await redis.commands.hexists(keys.statsNodes, 'pod-gone:7701')), {
    what: 'the report of the node gone for a day to be dropped',
  })

  const byHeader = await call(`${h.base}/stats`, { token: TOKENS.operator })
  t.is(byHeader.status, 200)
  t.like(byHeader.json, { stats: { total: { producerMessages: 2 } } })
})
