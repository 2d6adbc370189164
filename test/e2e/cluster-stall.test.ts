/**
 * One master of a Redis Cluster that hangs (SIGSTOP) while the others answer:
 * the node refuses at once what needs that master (a consumer whose keys are
 * on it, with 503 Retry-After), and goes on serving the rest: consumers whose
 * keys live on the answering masters connect and receive, publishes to their
 * rooms are stored, and /readyz stays 200 naming the master that does not
 * answer (a load balancer must not take every node out for one shard), as
 * does snapper_redis_masters_not_answering. Only when no master answers is
 * /readyz 503.
 */
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { Tokens } from '../../src/auth/token.js'
import { startNode, type RunningNode } from '../../src/cli/node.js'
import type { Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import {
  call,
  connectProducer,
  HTTP_PRODUCER_HEADERS,
  newUserId,
  TEST_SECRET,
  testConfig,
} from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, holdsFor, pause, within } from '../helpers/eventually.js'
import { startCli } from '../helpers/cli.js'
import { uniquePrefix } from '../helpers/redis.js'
import { startRedisCluster, type ClusterNodeInfo, type RedisCluster } from '../helpers/redis-cluster.js'
import { ask, AT_ONCE, AT_ONCE_MS, type Answer } from '../helpers/ask.js'
import { startWebhookReceiver } from '../helpers/webhook.js'

let cluster: RedisCluster | undefined
// No replicas and a long cluster-node-timeout: the stopped master is neither failed over nor
// marked failed (which would stop the whole cluster) while a test runs.
test.before(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 0, nodeTimeoutMs: 60_000 })
})
test.after.always(() => cluster?.stop())

const tokens = new Tokens([TEST_SECRET])

async function pidOf(redis: RedisCluster, node: ClusterNodeInfo): Promise<number> {
  const info = await redis.nodeClient(node.port).info('server')
  return Number(/process_id:(\d+)/.exec(info)![1])
}

/** A user whose keys (record, presence, own room) are on `master`, or on another one if `isOn` is false. */
async function userWhere(redis: RedisCluster, node: RunningNode, master: ClusterNodeInfo, isOn: boolean) {
  for (;;) {
    const userId = newUserId()
    const owner = await redis.masterOf(node.core.keys.presence(userId))
    if ((owner.address === master.address) === isOn) return userId
  }
}

/** A room whose keys are on another master than `master`. */
async function roomAwayFrom(
  redis: RedisCluster,
  node: RunningNode,
  master: ClusterNodeInfo,
): Promise<string> {
  for (let i = 0; ; i++) {
    const owner = await redis.masterOf(node.core.keys.room(`r${i}`).log)
    if (owner.address !== master.address) return `r${i}`
  }
}

const metric = (text: string, name: string): number | undefined => {
  const value = new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]
  return value === undefined ? undefined : Number(value)
}

test.serial(
  'one stalled master: consumers on the other masters connect and receive, those on it are refused at once, /readyz stays 200 naming it',
  async t => {
    const redis = cluster!
    const config = testConfig(redis.target, {
      ...AT_ONCE,
      redisPingIntervalMs: 200,
      consumerRetryAfterMs: 2500,
    })
    const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
    const admin = `http://127.0.0.1:${node.ports.admin}`
    const gateway = `http://127.0.0.1:${node.ports.gateway}`
    const stalled = await redis.masterOf(node.core.keys.room('stalled').log)
    const pid = await pidOf(redis, stalled)
    t.teardown(async () => {
      process.kill(pid, 'SIGCONT')
      await node.stop()
    })
    const healthyUser = await userWhere(redis, node, stalled, false)
    const stalledUser = await userWhere(redis, node, stalled, true)
    const healthyRoom = await roomAwayFrom(redis, node, stalled)
    const polling = (userId: string): Promise<Answer> =>
      ask(`${gateway}/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId })}`)
    const publish = (room: string, message: string): Promise<Answer> =>
      ask(`${admin}/v1/publish`, {
        method: 'POST',
        headers: HTTP_PRODUCER_HEADERS,
        body: JSON.stringify({ room, message }),
      })

    process.kill(pid, 'SIGSTOP')
    await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see the master stalled' })

    // Served: their keys are on masters that answer.
    const served = await polling(healthyUser)
    t.is(served.status, 200, JSON.stringify(served))

    // Refused at once: their handshake would wait for the stalled master.
    const refused = await polling(stalledUser)
    t.is(refused.status, 503, JSON.stringify(refused))
    t.true(refused.tookMs < AT_ONCE_MS, `refused after ${refused.tookMs} ms`)
    t.is(refused.body, '{"code":3,"message":"Storage unavailable, retry","retryAfterMs":2500}')
    const refusedPublish = await publish('stalled', 'm')
    t.is(refusedPublish.status, 503, JSON.stringify(refusedPublish))
    t.true(refusedPublish.tookMs < AT_ONCE_MS, `publish refused after ${refusedPublish.tookMs} ms`)
    t.regex(refusedPublish.body, new RegExp(`redis master ${stalled.address}`))

    const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId: healthyUser }))
    t.teardown(() => consumer.close())
    await within(consumer.opened(), 5000, 'a consumer on an answering master to open')
    t.is((await publish(`user${healthyUser}`, 'to the healthy user')).status, 200)
    await consumer.waitFor(1, 5000)
    t.deepEqual(consumer.messages, ['to the healthy user'])
    t.is((await publish(healthyRoom, 'stored')).status, 200)

    // Ready: the other masters serve; the body and a metric name the one that does not.
    const ready = await ask(`${admin}/readyz`)
    t.is(ready.status, 200, ready.body)
    const body = JSON.parse(ready.body) as { status: string; reasons: string[] }
    t.is(body.status, 'degraded')
    t.deepEqual(body.reasons, [`redis master ${stalled.address}: no PING answer within 1000 ms`])
    const metrics = (await ask(`${admin}/metrics`)).body
    t.is(metric(metrics, 'snapper_redis_masters_not_answering'), 1)
    t.is(metric(metrics, 'snapper_redis_up'), 0)

    process.kill(pid, 'SIGCONT')
    await eventually(() => node.redisWatchdog.isUp, { what: 'the watchdog to see the master again' })
    t.is((await polling(stalledUser)).status, 200)
    t.is((await ask(`${admin}/readyz`)).body, '{"status":"ok"}')
    t.is(metric((await ask(`${admin}/metrics`)).body, 'snapper_redis_masters_not_answering'), 0)
  },
)

interface Line {
  readonly level: number
  readonly msg: string
  readonly master?: string
  readonly problem?: string
  readonly problems?: string[]
  readonly outageMs?: number
  readonly mastersDown?: string[]
}

/** The watchdog's lines, in order: what an operator reading the log sees of the masters. */
const WATCHDOG_LINES = [
  'redis not answering',
  'redis master not serving',
  'redis master serving again',
  'redis answering again',
]

test.serial(
  'a second master stalling, and one of two coming back, each get one log line naming the master: warn with why, info with how long',
  async t => {
    const redis = cluster!
    const lines: Line[] = []
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Line) },
    )
    const node = await startNode(testConfig(redis.target, { redisPingIntervalMs: 200 }), logger, {
      gateway: 0,
      producer: 0,
    })
    const [first, second] = redis.nodes
    const pids = [await pidOf(redis, first!), await pidOf(redis, second!)]
    t.teardown(async () => {
      for (const pid of pids) process.kill(pid, 'SIGCONT')
      await node.stop()
    })
    const seen = (): Line[] => lines.filter(line => WATCHDOG_LINES.includes(line.msg))
    const noPing = (master: ClusterNodeInfo): string =>
      `redis master ${master.address}: no PING answer within 1000 ms`

    process.kill(pids[0]!, 'SIGSTOP')
    await eventually(() => seen().length === 1, { what: 'the first master seen stalled' })
    await holdsFor(() => seen().length === 1, 1000, 'no line per PING while the same master is stalled')
    process.kill(pids[1]!, 'SIGSTOP')
    await eventually(() => seen().length === 2, { what: 'a line for the second master' })
    await holdsFor(() => seen().length === 2, 1000, 'no line per PING while both are stalled')
    process.kill(pids[0]!, 'SIGCONT')
    await eventually(() => seen().length === 3, { what: 'a line for the first master serving again' })
    await holdsFor(() => seen().length === 3, 1000, 'no line per PING while the second is stalled')
    process.kill(pids[1]!, 'SIGCONT')
    await eventually(() => seen().length === 4, { what: 'the cluster answering again' })
    await holdsFor(() => seen().length === 4, 500, 'nothing more once every master answers')

    const [down, secondDown, firstBack, allBack] = seen()
    t.like(down, {
      level: 40,
      msg: 'redis not answering',
      problem: noPing(first!),
      problems: [noPing(first!)],
    })
    t.like(secondDown, {
      level: 40,
      msg: 'redis master not serving',
      master: second!.address,
      problem: noPing(second!),
    })
    t.deepEqual(secondDown!.mastersDown, [first!.address, second!.address])
    t.like(firstBack, { level: 30, msg: 'redis master serving again', master: first!.address })
    t.deepEqual(firstBack!.mastersDown, [second!.address])
    // Stalled about 2 s (1 s alone, then 1 s more beside the second, plus the PINGs' timeouts).
    t.true(firstBack!.outageMs! >= 2000 && firstBack!.outageMs! < 8000, `outageMs ${firstBack!.outageMs}`)
    t.like(allBack, { level: 30, msg: 'redis answering again' })
  },
)

test.serial(
  "one stalled master: the admin app's stats flush writes HTTP publishes to the stats keys on the answering masters, so the dashboard counts them during the stall",
  async t => {
    const redis = cluster!
    // A prefix whose stats keys share a master (each key is its own slot): another master can stall.
    let prefix = uniquePrefix()
    const ownersOf = (p: string): Promise<ClusterNodeInfo[]> =>
      Promise.all([`${p}:stats`, `${p}:stats:rooms`, `${p}:stats:nodes`].map(key => redis.masterOf(key)))
    while (new Set((await ownersOf(prefix)).map(owner => owner.address)).size > 1) prefix = uniquePrefix()
    const statsMaster = (await ownersOf(prefix))[0]!
    const stalled = redis.nodes.find(node => node.address !== statsMaster.address)!
    const config = testConfig(redis.target, {
      redisPrefix: prefix,
      redisPingIntervalMs: 200,
      statsFlushMs: 200,
    })
    const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
    const pid = await pidOf(redis, stalled)
    t.teardown(async () => {
      process.kill(pid, 'SIGCONT')
      await node.stop()
    })
    const room = await roomAwayFrom(redis, node, stalled)
    const published = async (): Promise<number> =>
      Number((await redis.nodeClient(statsMaster.port).hget(`${prefix}:stats`, 'producerMessages')) ?? 0)

    process.kill(pid, 'SIGSTOP')
    await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see the master stalled' })
    for (let i = 0; i < 3; i++) {
      const answer = await ask(`http://127.0.0.1:${node.ports.admin}/v1/publish`, {
        method: 'POST',
        headers: HTTP_PRODUCER_HEADERS,
        body: JSON.stringify({ room, message: `m${i}` }),
      })
      t.is(answer.status, 200, answer.body)
    }
    // What /stats and the dashboard's chart read: written within a few flushes, the master still stalled.
    await eventually(async () => (await published()) === 3, {
      what: 'the HTTP publishes in the stats',
      timeoutMs: 3000,
    })
    t.false(node.redisWatchdog.isUp, 'still stalled')
  },
)

test.serial('every master stalled: /readyz 503 naming each, and every handshake refused', async t => {
  const redis = cluster!
  const config = testConfig(redis.target, { ...AT_ONCE, redisPingIntervalMs: 200 })
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  const admin = `http://127.0.0.1:${node.ports.admin}`
  const pids = await Promise.all(redis.nodes.map(master => pidOf(redis, master)))
  t.teardown(async () => {
    for (const pid of pids) process.kill(pid, 'SIGCONT')
    await node.stop()
  })
  // Every master answered the watchdog once: its PING connections are made. One still connecting when
  // its master stalls would be named for that ("connection connect") rather than for the PING.
  const startedAtMs = Date.now()
  await eventually(() => node.redisWatchdog.lastAnswerAtMs > startedAtMs, { what: 'a first PING answered' })
  for (const pid of pids) process.kill(pid, 'SIGSTOP')
  await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see the masters stalled' })
  const ready = await ask(`${admin}/readyz`)
  t.is(ready.status, 503, ready.body)
  const { reasons } = JSON.parse(ready.body) as { reasons: string[] }
  t.deepEqual(
    [...reasons].sort(),
    redis.nodes.map(master => `redis master ${master.address}: no PING answer within 1000 ms`).sort(),
  )
  const handshake = await ask(
    `http://127.0.0.1:${node.ports.gateway}/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId: newUserId() })}`,
  )
  t.is(handshake.status, 503)
  t.true(handshake.tookMs < AT_ONCE_MS, `refused after ${handshake.tookMs} ms`)
  for (const pid of pids) process.kill(pid, 'SIGCONT')
  await eventually(() => node.redisWatchdog.isUp, { what: 'the watchdog to see the masters again' })
})

/** A publish through a node's admin app, to the user's own room. */
const publishTo = (admin: number, userId: string, message: string): Promise<Answer> =>
  ask(`http://127.0.0.1:${admin}/v1/publish`, {
    method: 'POST',
    headers: HTTP_PRODUCER_HEADERS,
    body: JSON.stringify({ room: `user${userId}`, message }),
  })

/** Two nodes on the cluster under their own prefix, PINGing every 200 ms; stopped after the test. */
async function twoNodes(
  t: ExecutionContext,
  overrides: Partial<Config>,
): Promise<[RunningNode, RunningNode]> {
  const config = testConfig(cluster!.target, {
    redisPrefix: uniquePrefix(),
    redisPingIntervalMs: 200,
    ...overrides,
  })
  const a = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  const b = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
  t.teardown(() => Promise.all([a.stop(), b.stop()]))
  return [a, b]
}

test.serial(
  'one stalled master for longer than nodeTtlMs: a node whose liveness key answers stays alive, its consumer counts and is handed over with nothing sent again',
  async t => {
    const redis = cluster!
    const nodeTtlMs = 1500
    const [a, b] = await twoNodes(t, { nodeTtlMs, cursorFlushMs: 200 })
    // A's liveness key, and the user's keys and own room, on a master that answers; another one stalls.
    const answering = await redis.masterOf(a.core.keys.nodeAlive(a.node.id))
    const stalled = redis.nodes.find(master => master.address !== answering.address)!
    const pid = await pidOf(redis, stalled)
    t.teardown(() => process.kill(pid, 'SIGCONT'))
    const userId = await userWhere(redis, a, answering, true)
    const token = tokens.sign({ userId })
    const admin = b.ports.admin!
    const producer = await connectProducer(t, b.ports.producer)

    const first = connectConsumer('v4 websocket', a.ports.gateway, token)
    t.teardown(() => first.close())
    await within(first.opened(), 5000, 'the consumer to open on node A')
    for (const message of ['1', '2', '3']) t.is((await publishTo(admin, userId, message)).status, 200)
    await first.waitFor(3, 5000)

    process.kill(pid, 'SIGSTOP')
    await eventually(() => !a.redisWatchdog.isUp, { what: "node A's watchdog to see the master stalled" })
    for (const message of ['4', '5']) t.is((await publishTo(admin, userId, message)).status, 200)
    await first.waitFor(5, 5000)
    await pause(2 * nodeTtlMs) // past A's liveness ttl, had A stopped refreshing it

    // Node B still takes A for alive: the consumer counts, and B asks A to hand it over.
    t.like(await call(producer.request('consumers', [userId])), { length: 1 }, 'counted online')
    const second = connectConsumer('v4 websocket', b.ports.gateway, token)
    t.teardown(() => second.close())
    await within(second.opened(), 5000, 'the consumer to open on node B')
    await eventually(() => a.node.online === 0, { what: 'node A to close its session (taken over)' })
    t.is((await publishTo(admin, userId, '6')).status, 200)
    await second.waitFor(1, 5000)
    await pause(500)
    t.deepEqual(second.messages, ['6'], 'what it acknowledged on node A does not come again')
    t.deepEqual(first.messages, ['1', '2', '3', '4', '5'], 'node A delivers no more')
  },
)

test.serial(
  'a takeover from a node whose liveness key and control channel are on the stalled master: refused within redisRequestTimeoutMs, served once it answers, nothing lost',
  async t => {
    const redis = cluster!
    const redisRequestTimeoutMs = 1500
    const [a, b] = await twoNodes(t, { redisRequestTimeoutMs, consumerRetryAfterMs: 500 })
    const stalled = await redis.masterOf(a.core.keys.nodeAlive(a.node.id))
    const pid = await pidOf(redis, stalled)
    t.teardown(() => process.kill(pid, 'SIGCONT'))
    // The user's keys and own room answer: only the node holding its session (A) is behind the stall.
    const userId = await userWhere(redis, a, stalled, false)
    const token = tokens.sign({ userId })
    const admin = b.ports.admin!

    const first = connectConsumer('v4 websocket', a.ports.gateway, token)
    t.teardown(() => first.close())
    await within(first.opened(), 5000, 'the consumer to open on node A')
    t.is((await publishTo(admin, userId, '1')).status, 200)
    await first.waitFor(1, 5000)

    process.kill(pid, 'SIGSTOP')
    await eventually(() => !b.redisWatchdog.isUp, { what: "node B's watchdog to see the master stalled" })
    t.is((await publishTo(admin, userId, '2')).status, 200)
    await first.waitFor(2, 5000)

    // Its handshake on B waits for A (alive? kick), which does not answer: refused in bounded time.
    const polling = await ask(
      `http://127.0.0.1:${b.ports.gateway}/websocket/?EIO=4&transport=polling&token=${token}`,
    )
    t.is(polling.status, 503, JSON.stringify(polling))
    t.true(
      polling.tookMs >= redisRequestTimeoutMs - 100 && polling.tookMs < redisRequestTimeoutMs + 1000,
      `refused after ${polling.tookMs} ms`,
    )
    t.is(polling.body, '{"code":3,"message":"Storage unavailable, retry","retryAfterMs":500}')
    const startedAtMs = Date.now()
    const websocket = new WebSocket(
      `ws://127.0.0.1:${b.ports.gateway}/websocket/?EIO=4&transport=websocket&token=${token}`,
    )
    const closed = await within(
      new Promise<{ code: number; afterMs: number }>(resolve =>
        websocket.on('close', code => resolve({ code, afterMs: Date.now() - startedAtMs })),
      ),
      redisRequestTimeoutMs + 3000,
      'the websocket to be closed',
    )
    t.is(closed.code, 1013)
    t.true(closed.afterMs < redisRequestTimeoutMs + 1000, `websocket closed after ${closed.afterMs} ms`)
    t.is((await publishTo(admin, userId, '3')).status, 200)
    await first.waitFor(3, 5000)

    process.kill(pid, 'SIGCONT')
    await eventually(() => b.redisWatchdog.isUp, { what: "node B's watchdog to see the master again" })
    const second = connectConsumer('v4 websocket', b.ports.gateway, token)
    t.teardown(() => second.close())
    await within(second.opened(), 5000, 'the consumer to open on node B once the master answers')
    await eventually(() => a.node.online === 0, { what: 'node A to close its session (taken over)' })
    t.is((await publishTo(admin, userId, '4')).status, 200)
    await second.waitFor(1, 5000)
    await pause(500)
    t.deepEqual(first.messages, ['1', '2', '3'])
    t.deepEqual(second.messages, ['4'], 'nothing sent again, nothing lost')
  },
)

test.serial(
  'a node that crashes while one master is stalled has flushed the cursors of the rooms on the others: the next node sends nothing again',
  async t => {
    const redis = cluster!
    const prefix = uniquePrefix()
    const a = await startCli(t, {
      workers: 0,
      env: {
        SNAPPER_REDIS: redis.target.kind === 'cluster' ? redis.target.nodes.join(',') : '',
        SNAPPER_REDIS_PREFIX: prefix,
        SNAPPER_TOKEN_SECRETS: TEST_SECRET,
        SNAPPER_REDIS_PING_INTERVAL_MS: '200',
        SNAPPER_CURSOR_FLUSH_MS: '200',
        SNAPPER_NODE_TTL_MS: '1500',
      },
    })
    const config = testConfig(redis.target, { redisPrefix: prefix, redisPingIntervalMs: 200 })
    const b = await startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
    t.teardown(() => b.stop())
    const admin = b.ports.admin!
    const producer = await connectProducer(t, b.ports.producer)
    // The user's keys and own room on one master, a room it is in on another, which stalls.
    const userId = newUserId()
    const home = await redis.masterOf(b.core.keys.presence(userId))
    const stalled = redis.nodes.find(master => master.address !== home.address)!
    const pid = await pidOf(redis, stalled)
    t.teardown(() => process.kill(pid, 'SIGCONT'))
    let room = 'elsewhere'
    for (let i = 0; (await redis.masterOf(b.core.keys.room(room).log)).address !== stalled.address; i++)
      room = `elsewhere${i}`
    const token = tokens.sign({ userId })

    const first = connectConsumer('v4 websocket', a.ports.gateway, token)
    t.teardown(() => first.close())
    const consumerId = await within(first.opened(), 5000, 'the consumer to open on node A')
    t.is(await call(producer.request('subscribe', [room, consumerId])), 1)
    for (const message of ['1', '2']) t.is((await publishTo(admin, userId, message)).status, 200)
    await first.waitFor(2, 5000)
    const published = await ask(`http://127.0.0.1:${admin}/v1/publish`, {
      method: 'POST',
      headers: HTTP_PRODUCER_HEADERS,
      body: JSON.stringify({ room, message: 'r' }),
    })
    t.is(published.status, 200)
    await first.waitFor(3, 5000)
    // Stalled before node A's watchdog can know: its next flush writes to that master too.
    process.kill(pid, 'SIGSTOP')
    await eventually(() => !b.redisWatchdog.isUp, { what: 'the watchdog to see the master stalled' })
    for (const message of ['3', '4']) t.is((await publishTo(admin, userId, message)).status, 200)
    await first.waitFor(5, 5000)
    await pause(1000) // several of node A's cursor flushes

    a.child.kill('SIGKILL')
    await a.exited
    process.kill(pid, 'SIGCONT')
    await eventually(() => b.redisWatchdog.isUp, { what: 'the watchdog to see the master again' })
    await pause(1500) // node A's liveness is gone: it is not waited for
    const second = connectConsumer('v4 websocket', b.ports.gateway, token)
    t.teardown(() => second.close())
    await within(second.opened(), 5000, 'the consumer to open on node B')
    t.is((await publishTo(admin, userId, '5')).status, 200)
    await second.waitFor(1, 5000)
    await pause(500)
    t.deepEqual(first.messages, ['1', '2', 'r', '3', '4'])
    t.deepEqual(second.messages, ['5'], 'what it acknowledged on node A during the stall does not come again')
  },
)

/**
 * A node that escalates to a receiver of its own, the escalations' master,
 * a master other than that one to stall (its pid; SIGCONT after the test) and a room on
 * that master (its track hashes there).
 */
async function escalatingNode(t: ExecutionContext, overrides: Partial<Config>) {
  const redis = cluster!
  const receiver = await startWebhookReceiver(t)
  const config = testConfig(redis.target, {
    redisPrefix: uniquePrefix(),
    redisPingIntervalMs: 200,
    escalationWebhookUrl: receiver.url,
    escalationWebhookSecret: 'escalation-stall-secret',
    escalationPollMs: 50,
    ...overrides,
  })
  const node = await startNode(config, silentLogger, { gateway: 0, producer: 0 })
  t.teardown(() => node.stop())
  const escalations = await redis.masterOf(node.core.keys.escalations.due)
  const stalled = redis.nodes.find(master => master.address !== escalations.address)!
  const pid = await pidOf(redis, stalled)
  t.teardown(() => process.kill(pid, 'SIGCONT'))
  let stalledRoom = 'on-stalled'
  for (
    let i = 0;
    (await redis.masterOf(node.core.keys.room(stalledRoom).log)).address !== stalled.address;
    i++
  )
    stalledRoom = `on-stalled${i}`
  return { node, receiver, escalations, stalled, pid, stalledRoom }
}

test.serial(
  'escalations while one master is stalled: a tracked message on it is sent once after it answers, and other rooms escalate during the stall',
  async t => {
    const redis = cluster!
    const { node, receiver, stalled, pid, stalledRoom } = await escalatingNode(t, {
      escalationTimeoutMs: 500, // a lease of 2 s
      escalationMaxInFlight: 3,
    })
    const healthyRoom = await roomAwayFrom(redis, node, stalled)
    const producer = await connectProducer(t, node.ports.producer)
    const track = async (room: string, escalateAfterMs: number): Promise<string> =>
      ((await call(producer.request('track', [room, 'nobody acks', { escalateAfterMs }]))) as { id: string })
        .id
    const sentOf = (id: string): number => receiver.requests.filter(r => r.json.id === id).length

    const onStalled = await track(stalledRoom, 1000)
    process.kill(pid, 'SIGSTOP')
    await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see the master stalled' })
    // Past three leases: a handler stuck on each claim would fill escalationMaxInFlight.
    await pause(6000)
    const onHealthy = await track(healthyRoom, 100)
    await eventually(() => sentOf(onHealthy) === 1, {
      what: "another room's escalation sent during the stall",
      timeoutMs: 3000,
    })
    t.is(sentOf(onStalled), 0, 'nothing sent while its track hash cannot be read')

    process.kill(pid, 'SIGCONT')
    await eventually(() => node.redisWatchdog.isUp, { what: 'the watchdog to see the master again' })
    await eventually(() => sentOf(onStalled) >= 1, {
      what: 'the stalled room escalation sent once the master answers',
      timeoutMs: 5000,
    })
    await pause(2500) // past a lease: a second copy would have come
    t.is(sentOf(onStalled), 1, 'sent once')
    t.is(sentOf(onHealthy), 1)
    t.like(await call(producer.request('receipt', [onStalled])), { acked: [], escalated: true })
  },
)

test.serial(
  'an escalation read from a master that stalled before the watchdog saw it: once it answers, a slow receiver still gets it once',
  async t => {
    const {
      node,
      receiver,
      escalations,
      pid,
      stalledRoom: room,
    } = await escalatingNode(t, { escalationTimeoutMs: 1000 }) // a lease of 3 s
    receiver.answer = () => ({ status: 200, afterMs: 800 }) // within escalationTimeoutMs
    const producer = await connectProducer(t, node.ports.producer)
    const { id } = (await call(
      producer.request('track', [room, 'nobody acks', { escalateAfterMs: 300 }]),
    )) as {
      id: string
    }

    // Due within 300 ms, the watchdog's PING times out after 1 s: the escalator reads its track hash first.
    process.kill(pid, 'SIGSTOP')
    await eventually(() => !node.redisWatchdog.isUp, { what: 'the watchdog to see the master stalled' })
    await pause(3500) // past that claim's lease: claimed again since
    // Answering again shortly before the current lease ends: the read that waited returns now, the next
    // claim comes while a request from it would still be on its way.
    const { due } = node.core.keys.escalations
    const leaseEnd = Number(await cluster!.nodeClient(escalations.port).zscore(due, id))
    await pause(leaseEnd - Date.now() - 600)
    process.kill(pid, 'SIGCONT')
    await receiver.waitForDelivered(1, 8000)
    await pause(4000) // past another lease
    t.is(receiver.requests.filter(request => request.json.id === id).length, 1, 'sent once')
    t.like(await call(producer.request('receipt', [id])), { acked: [], escalated: true })
  },
)
