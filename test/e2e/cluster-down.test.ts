/**
 * A Redis Cluster that answers PING yet refuses every key command with
 * `CLUSTERDOWN The cluster is down` (cluster_state:fail: a slot no master
 * serves, with cluster-require-full-coverage yes, the default). The node
 * asks each master's cluster_state beside its PING (redis/ping.ts): while
 * every master says fail, /readyz is 503 naming them, new sessions and HTTP
 * publishes are refused at once (not after redisRequestTimeoutMs, and never
 * as a session that opens with nothing taken), periodic work is skipped
 * (no warning per flush), and a producer's request waits and is stored once
 * the cluster is whole again. docs/RELIABILITY.md, "A Redis Cluster that is down".
 */
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import {
  call,
  connectProducer,
  HTTP_PRODUCER_HEADERS,
  newUserId,
  TEST_SECRET,
  testConfig,
} from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, within } from '../helpers/eventually.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { ask, AT_ONCE, AT_ONCE_MS, type Answer } from '../helpers/ask.js'

let cluster: RedisCluster | undefined
// No replicas, a short cluster-node-timeout: a master stopped past it puts the cluster in fail.
test.before(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 0, nodeTimeoutMs: 1000 })
})
test.after.always(() => cluster?.stop())

const tokens = new Tokens([TEST_SECRET])

interface Line {
  readonly level: number
  readonly msg: string
  readonly master?: string
  readonly problem?: string
}

function recordingLogger(): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = []
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Line) },
  )
  return { logger, lines }
}

const clusterState = async (redis: RedisCluster, port: number): Promise<string> =>
  /cluster_state:(\w+)/.exec((await redis.nodeClient(port).call('CLUSTER', 'INFO')) as string)![1]!

/** A slot no key of the tests uses: taken from every master, it leaves the cluster uncovered. */
const SLOT = 7

/**
 * `uncover` takes SLOT from every master (the cluster turns fail), `cover`
 * gives it back; given back after the test at the latest (before the node
 * stops: teardowns run last added first).
 */
function slotTaken(
  t: ExecutionContext,
  redis: RedisCluster,
): { uncover: () => Promise<void>; cover: () => Promise<void> } {
  let isUncovered = false
  const cover = async (): Promise<void> => {
    if (!isUncovered) return
    await redis.nodeClient(redis.nodes[0]!.port).call('CLUSTER', 'ADDSLOTS', SLOT)
    isUncovered = false
  }
  t.teardown(cover)
  return {
    async uncover() {
      for (const master of redis.nodes) await redis.nodeClient(master.port).call('CLUSTER', 'DELSLOTS', SLOT)
      isUncovered = true
    },
    cover,
  }
}

test.serial(
  'every master answers PING but the cluster is down: /readyz 503 naming it, handshakes and HTTP publishes refused at once, a producer request stored once it is back, one log line each way',
  async t => {
    const redis = cluster!
    const { logger, lines } = recordingLogger()
    const config = testConfig(redis.target, {
      ...AT_ONCE,
      redisPingIntervalMs: 200,
      consumerRetryAfterMs: 2500,
    })
    const node = await startNode(config, logger, { gateway: 0, producer: 0, admin: 0 })
    const admin = `http://127.0.0.1:${node.ports.admin}`
    const gateway = `http://127.0.0.1:${node.ports.gateway}`
    t.teardown(() => node.stop())
    const { uncover, cover } = slotTaken(t, redis)
    const userId = newUserId()
    const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId }))
    t.teardown(() => consumer.close())
    await within(consumer.opened(), 5000, 'the consumer to open')
    const producer = await connectProducer(t, node.ports.producer)
    const publish = (message: string): Promise<Answer> =>
      ask(`${admin}/v1/publish`, {
        method: 'POST',
        headers: HTTP_PRODUCER_HEADERS,
        body: JSON.stringify({ room: `user${userId}`, message }),
      })
    t.is((await publish('before')).status, 200)
    await consumer.waitFor(1, 5000)

    await uncover()
    t.is(await clusterState(redis, redis.nodes[0]!.port), 'fail')
    // Each master turns fail on its own clock: a PING round may find one so, and a handshake whose
    // keys are on another would still be let through to its take (to wait out ioredis' CLUSTERDOWN retries).
    await eventually(() => node.core.redis.mastersDown.length === redis.nodes.length, {
      what: 'the node to see every master down',
    })

    const ready = await ask(`${admin}/readyz`)
    t.is(ready.status, 503, ready.body)
    const { reasons } = JSON.parse(ready.body) as { reasons: string[] }
    t.deepEqual(
      [...reasons].sort(),
      redis.nodes
        .map(master => `redis master ${master.address}: cluster_state fail (the cluster refuses commands)`)
        .sort(),
    )
    const handshake = await ask(
      `${gateway}/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId: newUserId() })}`,
    )
    t.is(handshake.status, 503, handshake.body)
    t.true(handshake.tookMs < AT_ONCE_MS, `refused after ${handshake.tookMs} ms`)
    t.is(handshake.body, '{"code":3,"message":"Storage unavailable, retry","retryAfterMs":2500}')
    const refused = await publish('refused')
    t.is(refused.status, 503, refused.body)
    t.true(refused.tookMs < AT_ONCE_MS, `publish refused after ${refused.tookMs} ms`)
    t.regex(refused.body, /not serving \(no PING answer, or cluster_state fail/)

    // A producer's request is taken and waits for the cluster (the client does not send it again).
    const request = call(producer.request('publish', [[`user${userId}`, 'during']]))
    await new Promise(resolve => setTimeout(resolve, 1500)) // periodic flushes that would each fail
    await cover()
    t.is(await within(request, 10_000, 'the request to be answered once the cluster is back'), 1)
    await consumer.waitFor(2, 5000)
    t.deepEqual(consumer.messages, ['before', 'during'])
    await eventually(() => node.redisWatchdog.isUp, { what: 'the watchdog to see the cluster again' })
    t.is((await ask(`${admin}/readyz`)).body, '{"status":"ok"}')

    // A master whose cluster_state turned fail after a PING round that found others so gets a line of its own.
    const warnings = lines.filter(line => line.level >= 40)
    t.deepEqual(
      warnings.map(line => line.msg).filter(msg => msg !== 'redis master not serving'),
      ['redis not answering'],
      JSON.stringify(warnings),
    )
    t.is(lines.filter(line => line.msg === 'redis answering again').length, 1)
  },
)

test.serial(
  'a master stopped past cluster-node-timeout takes the cluster down: /readyz 503 naming every master, every handshake refused at once, the log names the stopped master and then each that turned fail',
  async t => {
    const redis = cluster!
    const { logger, lines } = recordingLogger()
    const config = testConfig(redis.target, { ...AT_ONCE, redisPingIntervalMs: 200 })
    const node = await startNode(config, logger, { gateway: 0, producer: 0, admin: 0 })
    const admin = `http://127.0.0.1:${node.ports.admin}`
    const [stopped, ...others] = redis.nodes
    const info = await redis.nodeClient(stopped!.port).info('server')
    const pid = Number(/process_id:(\d+)/.exec(info)![1])
    t.teardown(async () => {
      process.kill(pid, 'SIGCONT')
      await node.stop()
    })
    process.kill(pid, 'SIGSTOP')
    await eventually(async () => (await clusterState(redis, others[0]!.port)) === 'fail', {
      what: 'the other masters to mark the cluster failed',
      timeoutMs: 15_000,
    })
    await eventually(async () => (await ask(`${admin}/readyz`)).status === 503, {
      what: '/readyz to say the cluster is down',
    })
    const { reasons } = JSON.parse((await ask(`${admin}/readyz`)).body) as { reasons: string[] }
    t.deepEqual(
      [...reasons].sort(),
      [
        `redis master ${stopped!.address}: no PING answer within 1000 ms`,
        ...others.map(
          master => `redis master ${master.address}: cluster_state fail (the cluster refuses commands)`,
        ),
      ].sort(),
    )
    // What the operator's log says of it: the stopped master first, then each master that turned fail.
    // (/readyz PINGs for itself: the node refuses handshakes once its own watchdog has seen them.)
    const watchdogWarnings = (): Line[] =>
      lines.filter(line => line.msg === 'redis not answering' || line.msg === 'redis master not serving')
    await eventually(() => watchdogWarnings().length >= redis.nodes.length, {
      what: 'a warning for each master',
    })
    const warnings = watchdogWarnings()
    t.true(warnings.every(line => line.level === 40))
    t.like(warnings[0], {
      msg: 'redis not answering',
      problem: `redis master ${stopped!.address}: no PING answer within 1000 ms`,
    })
    t.deepEqual(
      warnings
        .slice(1)
        .map(line => [line.msg, line.master, line.problem])
        .sort(),
      others
        .map(master => [
          'redis master not serving',
          master.address,
          `redis master ${master.address}: cluster_state fail (the cluster refuses commands)`,
        ])
        .sort(),
    )
    // A user whose keys are on a master that answers PING: refused at once all the same.
    const handshake = await ask(
      `http://127.0.0.1:${node.ports.gateway}/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId: newUserId() })}`,
    )
    t.is(handshake.status, 503, handshake.body)
    t.true(handshake.tookMs < AT_ONCE_MS, `refused after ${handshake.tookMs} ms`)
    process.kill(pid, 'SIGCONT')
    await eventually(() => node.redisWatchdog.isUp, {
      what: 'the watchdog to see the cluster whole again',
      timeoutMs: 15_000,
    })
    t.is((await ask(`${admin}/readyz`)).body, '{"status":"ok"}')
  },
)

/** How many replies the masters answered `CLUSTERDOWN` since their last `CONFIG RESETSTAT`. */
async function clusterDownReplies(redis: RedisCluster): Promise<number> {
  let replies = 0
  for (const master of redis.nodes) {
    const stats = (await redis.nodeClient(master.port).info('errorstats')) as string
    replies += Number(/errorstat_CLUSTERDOWN:count=(\d+)/.exec(stats)?.[1] ?? 0)
  }
  return replies
}

const resetStats = (redis: RedisCluster): Promise<unknown> =>
  Promise.all(redis.nodes.map(master => redis.nodeClient(master.port).config('RESETSTAT')))

test.serial(
  'a handshake the cluster refuses before the watchdog has seen it down: 503 with retryAfterMs at its first CLUSTERDOWN (not after ioredis retries it), no session opened with nothing taken; once whole, it connects and gets its messages',
  async t => {
    const redis = cluster!
    // The watchdog's first PING comes after the test: only the take itself meets CLUSTERDOWN.
    const config = testConfig(redis.target, {
      ...AT_ONCE,
      redisPingIntervalMs: 60_000,
      consumerRetryAfterMs: 2500,
    })
    const node = await startNode(config, pino({ level: 'silent' }), { gateway: 0, producer: 0, admin: 0 })
    t.teardown(() => node.stop())
    const { uncover, cover } = slotTaken(t, redis)
    const userId = newUserId()
    const token = tokens.sign({ userId })
    await uncover()
    t.is(await clusterState(redis, redis.nodes[0]!.port), 'fail')

    await resetStats(redis)
    // Both at once, so that the websocket's take most likely meets CLUSTERDOWN itself too: once the
    // watchdog has seen the cluster down, the upgrade is refused before any take (503).
    const websocket = new WebSocket(
      `ws://127.0.0.1:${node.ports.gateway}/websocket/?EIO=4&transport=websocket&token=${token}`,
    )
    const messages: string[] = []
    websocket.on('message', data => messages.push(String(data)))
    let upgradeStatus: number | undefined
    websocket.on('unexpected-response', (_, res) => void (upgradeStatus = res.statusCode))
    websocket.on('error', () => {}) // the upgrade refused: upgradeStatus says so
    const websocketClosed = new Promise<number>(resolve => websocket.on('close', resolve))
    const handshake = await ask(
      `http://127.0.0.1:${node.ports.gateway}/websocket/?EIO=4&transport=polling&token=${token}`,
    )
    t.is(handshake.status, 503, handshake.body)
    t.is(handshake.body, '{"code":3,"message":"Storage unavailable, retry","retryAfterMs":2500}')
    t.is(node.node.online, 0, 'no session opened')
    // Its take was refused once and not sent again (ioredis would, 16 times, and then the release of the
    // consumer as many: 3.4 s unloaded); the node's own periodic writes may meet a few meanwhile.
    const replies = await clusterDownReplies(redis)
    t.true(replies < 16, `${replies} CLUSTERDOWN replies during the handshake`)
    t.true(handshake.tookMs < AT_ONCE_MS, `refused after ${handshake.tookMs} ms`)
    // Refused well before redisRequestTimeoutMs as well: closed 1013 (try again later) after its take.
    const code = await within(websocketClosed, AT_ONCE_MS, 'the websocket to be closed')
    t.true(code === 1013 || upgradeStatus === 503, `closed ${code}, upgrade answered ${upgradeStatus}`)
    t.deepEqual(messages, [], 'no open packet')

    // The take's CLUSTERDOWN had the watchdog ask every master at once, not at its next PING (60 s).
    await eventually(() => node.core.redis.mastersDown.length === redis.nodes.length, {
      what: 'the node to see every master down',
      timeoutMs: AT_ONCE_MS,
    })
    const publish = await ask(`http://127.0.0.1:${node.ports.admin}/v1/publish`, {
      method: 'POST',
      headers: HTTP_PRODUCER_HEADERS,
      body: JSON.stringify({ room: `user${userId}`, message: 'refused' }),
    })
    t.is(publish.status, 503, publish.body)
    t.true(publish.tookMs < AT_ONCE_MS, `publish refused after ${publish.tookMs} ms`)
    t.regex(publish.body, /not serving \(no PING answer, or cluster_state fail/)

    await cover()
    const states = (): Promise<string[]> =>
      Promise.all(redis.nodes.map(master => clusterState(redis, master.port)))
    await eventually(async () => (await states()).every(state => state === 'ok'), {
      what: 'every master to see the cluster whole again',
    })
    // As a client in the field: a refused handshake (the client's cluster view catching up) is tried again.
    const consumer = connectConsumer('v4 websocket', node.ports.gateway, token, { reconnectMs: 300 })
    t.teardown(() => consumer.close())
    await within(consumer.opened(), 10_000, 'the consumer to open once the cluster is whole')
    const producer = await connectProducer(t, node.ports.producer)
    t.is(await call(producer.request('publish', [[`user${userId}`, 'after']])), 1)
    await consumer.waitFor(1, 5000)
    t.deepEqual(consumer.messages, ['after'])
  },
)
