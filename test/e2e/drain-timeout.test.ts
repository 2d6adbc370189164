/**
 * A node embedded in a program (startNode, no CLI: test/helpers/embedded-node-run.ts),
 * stopped with consumers connected and a producer publishing. When Redis does
 * not answer (hung: SIGSTOP; gone: SIGKILL), its drain gives up after
 * drainTimeoutMs; then everything the drain started settles at once (the
 * node's own stop, the producer side's close) and nothing of the node keeps
 * the process alive: it ends by itself, with a producer still connected.
 * The same on a Redis Cluster whose every master hangs or is gone. With
 * Redis up, the same stop drains fully and the process ends too.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import type Producer from 'snapper-producer'
import type { RedisTarget } from '../../src/config/defaults.js'
import { asTarget, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import type { EmbeddedNodeEvent } from '../helpers/embedded-node-run.js'
import { eventually, holdsFor, within } from '../helpers/eventually.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { dieWithThisProcess } from '../helpers/watchdog.js'

const RUN = fileURLToPath(new URL('../helpers/embedded-node-run.js', import.meta.url))
const tokens = new Tokens([TEST_SECRET])
const DRAIN_TIMEOUT_MS = 1000
/**
 * How soon after the stop settled what the drain started must have settled
 * too, and the process ended, in ms: ioredis alone would take 2 s (its
 * disconnectTimeout) against a Redis that hangs, and for ever against one
 * that is gone.
 */
const SETTLED_WITHIN_MS = 1000
const EXITED_WITHIN_MS = 1500
/**
 * The same for a Redis Cluster that is gone: each slot-map read that failed
 * before the drop leaves ioredis a timer of its disconnectTimeout (2 s) that
 * nothing can reach or clear, so up to 2 s.
 */
const CLUSTER_GONE_EXITED_WITHIN_MS = 2500

type Settled = Extract<EmbeddedNodeEvent, { outcome: string }>

interface EmbeddedNode {
  readonly ports: { readonly gateway: number; readonly producer: number }
  /** Asks the node to stop (SIGUSR2). */
  stop(): void
  /** The first `event` it reported, within `timeoutMs`. */
  settled(event: Settled['event'], timeoutMs?: number): Promise<Settled>
  /** Exit code and signal, once it ended by itself. */
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>
  /** What holds it, as it last said; and its log. */
  holders(): string[]
  log(): string
}

async function startEmbeddedNode(
  t: ExecutionContext,
  target: RedisTarget,
  overrides: Record<string, unknown>,
): Promise<EmbeddedNode> {
  const child = spawn(process.execPath, [RUN, JSON.stringify(target), JSON.stringify(overrides)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  dieWithThisProcess(child)
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let log = ''
  child.stderr.on('data', (chunk: Buffer) => (log += chunk))
  const events: EmbeddedNodeEvent[] = []
  const waiters = new Set<() => void>()
  createInterface({ input: child.stdout }).on('line', line => {
    events.push(JSON.parse(line) as EmbeddedNodeEvent)
    for (const wake of waiters) wake()
  })
  const first = <E extends EmbeddedNodeEvent>(
    matches: (event: EmbeddedNodeEvent) => event is E,
  ): Promise<E> =>
    new Promise(resolve => {
      const look = (): void => {
        const found = events.find(matches)
        if (!found) return
        waiters.delete(look)
        resolve(found)
      }
      waiters.add(look)
      look()
    })
  const started = await within(
    Promise.race([
      first((e): e is Extract<EmbeddedNodeEvent, { event: 'started' }> => e.event === 'started'),
      exited.then(([code]) => Promise.reject(new Error(`the node exited with ${code}:\n${log}`))),
    ]),
    20_000,
    'the embedded node to start',
  )
  return {
    ports: { gateway: started.gateway, producer: started.producer },
    stop: () => child.kill('SIGUSR2'),
    settled: (event, timeoutMs = 10_000) =>
      within(
        first((e): e is Settled => e.event === event),
        timeoutMs,
        `${event} to settle (the node's log:\n${log})`,
      ),
    exited,
    holders: () => events.filter(e => e.event === 'alive').at(-1)?.resources ?? [],
    log: () => log,
  }
}

/** Consumers of the node, each in its user room, that received what a producer published to them. */
async function busyNode(
  t: ExecutionContext,
  node: EmbeddedNode,
): Promise<{ producer: Producer; consumers: TestConsumer[]; userIds: string[] }> {
  const userIds = [newUserId(), newUserId(), newUserId()]
  const consumers = userIds.map(userId =>
    connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId })),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  await within(Promise.all(consumers.map(consumer => consumer.opened())), 10_000, 'the consumers to open')
  const producer = await connectProducer(t, node.ports.producer)
  for (const userId of userIds) for (let i = 0; i < 20; i++) producer.sendMessage(`user${userId}`, `${i}`)
  await Promise.all(consumers.map(consumer => consumer.waitFor(20)))
  return { producer, consumers, userIds }
}

/** Freezes the Redis of a test (every master of a cluster) while a node runs on it; thawed after the test. */
type Freeze = (t: ExecutionContext) => Promise<void>

/**
 * A node on `target`, consumers connected and a producer publishing on, is
 * stopped once `freeze` made Redis hang or go: its drain gives up after
 * drainTimeoutMs, then the node's own stop and the producer side's close
 * settle at once and the process ends by itself with code 0.
 */
async function stopWhileFrozen(
  t: ExecutionContext,
  target: RedisTarget,
  freeze: Freeze,
  exitedWithinMs = EXITED_WITHIN_MS,
): Promise<void> {
  const node = await startEmbeddedNode(t, target, { drainTimeoutMs: DRAIN_TIMEOUT_MS })
  const { producer, userIds } = await busyNode(t, node)
  // Publishing on through the stop: appends wait for Redis, and the producer stays connected.
  let sent = 0
  const publishing = setInterval(() => {
    for (const userId of userIds) producer.sendMessage(`user${userId}`, `more ${sent++}`)
  }, 10)
  t.teardown(() => clearInterval(publishing))

  await freeze(t)
  node.stop()
  const stop = await node.settled('stop')
  t.is(stop.outcome, 'rejected')
  t.regex(stop.message ?? '', /^drain not done within 1000 ms \(Redis connection \w+\)$/)
  t.true(
    stop.atMs >= DRAIN_TIMEOUT_MS && stop.atMs < DRAIN_TIMEOUT_MS + 1000,
    `gave up after ${stop.atMs} ms`,
  )
  for (const part of ['brokerNodeStop', 'producerClose'] as const) {
    const settled = await node.settled(part)
    t.true(
      settled.atMs - stop.atMs <= SETTLED_WITHIN_MS,
      `${part} ${settled.outcome} ${settled.atMs - stop.atMs} ms after the drain gave up`,
    )
  }
  const [code, signal] = await within(node.exited, exitedWithinMs, 'the process to end by itself').catch(
    (err: Error) => {
      throw new Error(`${err.message}: held by ${node.holders().join(', ')}`)
    },
  )
  t.deepEqual({ code, signal }, { code: 0, signal: null }, node.log())
  t.regex(node.log(), /"msg":"node drain timed out"/)
  t.notRegex(node.log(), /unexpectedly/, 'no handler threw')
}

for (const [how, freeze] of [
  ['hangs (SIGSTOP)', (redis: RedisServer) => Promise.resolve(redis.signal('SIGSTOP'))],
  ['is gone (SIGKILL)', (redis: RedisServer) => redis.kill('SIGKILL')],
] as const) {
  test(`a stop while Redis ${how} gives up after drainTimeoutMs; then the node's own stop settles and the process ends by itself`, async t => {
    const redis = await startRedis()
    t.teardown(async () => {
      redis.signal('SIGCONT')
      await redis.stop()
    })
    await stopWhileFrozen(t, asTarget(redis.url), () => freeze(redis))
  })
}

// One cluster for the file: no replicas and a long cluster-node-timeout, so that masters that hang are
// neither failed over nor marked failed, and answer again once thawed. Masters killed do not come back:
// that test runs last.
let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 0, nodeTimeoutMs: 60_000 })
})
test.after.always(() => cluster?.stop())

/** The pid of every master of the file's cluster. */
const masterPids = (redis: RedisCluster): Promise<number[]> =>
  Promise.all(
    redis.nodes.map(async ({ port }) => {
      const info = await redis.nodeClient(port).info('server')
      return Number(/process_id:(\d+)/.exec(info)![1])
    }),
  )

const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false // ESRCH: it has exited and been reaped
  }
}

test.serial(
  "a stop while every master of a Redis Cluster hangs (SIGSTOP) gives up after drainTimeoutMs; then the node's own stop settles and the process ends by itself",
  async t => {
    const redis = cluster!
    const pids = await masterPids(redis)
    t.teardown(() => pids.forEach(pid => process.kill(pid, 'SIGCONT')))
    await stopWhileFrozen(t, redis.target, async () => pids.forEach(pid => process.kill(pid, 'SIGSTOP')))
  },
)

test.serial(
  "a stop while every master of a Redis Cluster is gone (SIGKILL) gives up after drainTimeoutMs; then the node's own stop settles and the process ends by itself",
  async t => {
    const redis = cluster!
    const pids = await masterPids(redis)
    const kill = async (): Promise<void> => {
      for (const pid of pids) process.kill(pid, 'SIGKILL')
      await eventually(() => !pids.some(isRunning), { what: 'every master to exit' })
    }
    await stopWhileFrozen(t, redis.target, kill, CLUSTER_GONE_EXITED_WITHIN_MS)
  },
)

test('with Redis up the same stop drains fully: it resolves, the process ends by itself, cursors are committed', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const redisPrefix = uniquePrefix()
  const node = await startEmbeddedNode(t, asTarget(redis.url), { drainTimeoutMs: 5000, redisPrefix })
  const { consumers, userIds } = await busyNode(t, node)

  node.stop()
  const stop = await node.settled('stop')
  t.is(stop.outcome, 'resolved', stop.message)
  t.is((await node.settled('brokerNodeStop')).outcome, 'resolved')
  const [code, signal] = await within(node.exited, EXITED_WITHIN_MS, 'the process to end by itself').catch(
    (err: Error) => {
      throw new Error(`${err.message}: held by ${node.holders().join(', ')}`)
    },
  )
  t.deepEqual({ code, signal }, { code: 0, signal: null }, node.log())
  consumers.forEach(consumer => consumer.close())

  // The next node sends each consumer only what comes next: what it acknowledged was committed.
  const next = await startBroker(t, redis.url, { redisPrefix })
  const producer = await connectProducer(t, next.ports.producer)
  for (const userId of userIds) {
    const again = connectConsumer('v4 websocket', next.ports.gateway, tokens.sign({ userId }))
    t.teardown(() => again.close())
    await within(again.opened(), 10_000, 'the consumer to open on the next node')
    producer.sendMessage(`user${userId}`, 'next')
    await again.waitFor(1)
    await holdsFor(() => again.messages.length === 1, 200, 'nothing acknowledged sent again')
    t.deepEqual(again.messages, ['next'])
  }
})
