import type { ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { defaults, type Config, type RedisTarget } from '../../src/config/defaults.js'
import type { ProducerApi } from '../../src/broker/api.js'
import type { Batch } from '../../src/broker/batch.js'
import { createBrokerCore, type BrokerCore } from '../../src/broker/core.js'
import { BrokerNode, type ConsumerSink } from '../../src/broker/node.js'
import type { Outbox } from '../../src/broker/outbox.js'
import { silentLogger, type Logger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { startNode, type RunningNode } from '../../src/cli/node.js'
import Producer from 'snapper-producer'
import { uniquePrefix } from './redis.js'
import { within } from './eventually.js'

/** A Redis target; a bare URL is one standalone server. */
export const asTarget = (redis: RedisTarget | string): RedisTarget =>
  typeof redis === 'string' ? { kind: 'standalone', url: redis } : redis

/**
 * Runs start-ups against a Redis Cluster a few at a time. A cluster client
 * costs ioredis tens of ms of CPU to connect (it maps all 16384 slots, the
 * sharded subscriber group twice), so a file that starts thirty nodes at once
 * on a busy machine passes the 5 s connect timeout; one at a time they don't.
 */
function startingOn<T>(target: RedisTarget, start: () => Promise<T>): Promise<T> {
  if (target.kind === 'standalone') return start()
  const turn = clusterStarts.then(() => start())
  clusterStarts = turn.then(
    () => {},
    () => {},
  )
  return turn
}
let clusterStarts: Promise<void> = Promise.resolve()

/** A broker core and node on a real Redis, with a prefix of its own; stopped at the test's end. */
export async function startTestNode(
  t: ExecutionContext,
  redisTarget: RedisTarget | string,
  overrides: Partial<Config> = {},
  logger: Logger = silentLogger,
): Promise<{ core: BrokerCore; node: BrokerNode; config: Config }> {
  const config: Config = {
    ...defaults,
    redis: asTarget(redisTarget),
    redisPrefix: uniquePrefix(),
    ...overrides,
  }
  const redis = createRedisClients(config.redis, logger)
  const core = createBrokerCore(config, redis, logger)
  const node = new BrokerNode(core, config, logger)
  await startingOn(config.redis, async () => {
    await redis.connect(5000)
    await node.start()
  })
  t.teardown(async () => {
    await node.stop(0)
    await redis.quit()
  })
  return { core, node, config }
}

type TestNode = Awaited<ReturnType<typeof startTestNode>>

/**
 * Two nodes on one prefix, for a crash and a takeover: `crashed`, which a
 * test "crashes" by dropping its liveness key (presence.dropNode: no release,
 * no takeover asked), and `next`, which takes its consumers over. The crashed
 * node must not look alive: its liveness key is refreshed every nodeTtlMs / 3.
 * Nor may it flush on its own, as a crashed node cannot: its timer (every
 * cursorFlushMs) would write the acks the crash loses, between the crash and
 * the takeover (a loaded CI machine met it). It flushes when the test says.
 */
export async function startCrashingPair(
  t: ExecutionContext,
  redisTarget: RedisTarget | string,
): Promise<{ crashed: TestNode; next: TestNode }> {
  const redisPrefix = uniquePrefix()
  const crashed = await startTestNode(t, redisTarget, {
    redisPrefix,
    nodeTtlMs: 600_000,
    cursorFlushMs: 600_000,
  })
  const next = await startTestNode(t, redisTarget, { redisPrefix })
  return { crashed, next }
}

/**
 * A consumer session in memory: records every batch it is sent, acks them
 * (unless told not to), and lets a test wait for messages.
 */
export class RecordingSink implements ConsumerSink {
  readonly batches: Batch[] = []
  readonly messages: string[] = []
  /** Gap notices, each with the number of messages received before it. */
  readonly gaps: { room: string; missed: number | null; after: number }[] = []
  closed: string | undefined
  outbox: Outbox | undefined
  #waiters: { count: number; resolve: () => void }[] = []

  constructor(
    private readonly node: BrokerNode,
    public autoAck = true,
  ) {}

  send(batch: Batch): void {
    this.batches.push(batch)
    // snapper-consumer delivers a batch only if its id differs from the previous one.
    const previous = this.batches[this.batches.length - 2]
    if (previous?.id !== batch.id) for (const entry of batch.entries) this.messages.push(entry.message)
    if (this.autoAck) queueMicrotask(() => this.ack())
    this.#wake()
  }

  gap(room: string, missed: number | null): void {
    this.gaps.push({ room, missed, after: this.messages.length })
  }

  close(reason: string): void {
    this.closed = reason
    if (this.outbox) void this.node.disconnect(this.outbox, this)
  }

  /** Acks the last batch received. */
  ack(): boolean {
    const last = this.batches[this.batches.length - 1]
    return !!last && !!this.outbox && this.node.ack(this.outbox, last.id)
  }

  async connect(consumerId: string, userId: string): Promise<this> {
    this.outbox = await this.node.connect(consumerId, userId, this)
    return this
  }

  /** Resolves once at least `count` messages arrived (rejects after timeoutMs). */
  waitFor(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.messages.length >= count) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`waited for ${count} messages, got ${this.messages.length}`)),
        timeoutMs,
      )
      this.#waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
      })
    })
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter(waiter => {
      if (this.messages.length < waiter.count) return true
      waiter.resolve()
      return false
    })
  }
}

export const range = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => String(from + i))

/** Publishes `messages` to one room through a core's producer API, in one batch. */
export const publishAll = (api: ProducerApi, room: string, messages: readonly string[]): Promise<number> =>
  api.publish(messages.map(message => [room, message] as const))

/** A node's config for tests: this Redis, a prefix of its own, the test secret, no drain spread. */
export function testConfig(redisTarget: RedisTarget | string, overrides: Partial<Config> = {}): Config {
  return {
    ...defaults,
    redis: asTarget(redisTarget),
    redisPrefix: uniquePrefix(),
    tokenSecrets: [TEST_SECRET],
    drainSpreadMs: 0,
    ...overrides,
  }
}

/** A whole node (gateway, producer listener) on free ports, with a known token secret. */
export async function startBroker(
  t: ExecutionContext,
  redisTarget: RedisTarget | string,
  overrides: Partial<Config> = {},
  logger: Logger = silentLogger,
): Promise<RunningNode & { config: Config }> {
  const config = testConfig(redisTarget, overrides)
  const running = await startingOn(config.redis, () => startNode(config, logger, { gateway: 0, producer: 0 }))
  t.teardown(() => running.stop())
  return { ...running, config }
}

export const TEST_SECRET = 'tokenSecretXXX'

/** Headers of an admin `/v1` request by a producer whose token the test secret signs. */
export const HTTP_PRODUCER_HEADERS = {
  authorization: `Bearer ${new Tokens([TEST_SECRET]).sign({ id: 'http' })}`,
  'content-type': 'application/json',
}

/** A connected snapper-producer@2.1.1; closed at the test's end. */
export async function connectProducer(
  t: ExecutionContext,
  port: number,
  secret = TEST_SECRET,
): Promise<Producer> {
  const producer = new Producer(port, { secretKeys: [secret], producerId: 'test' })
  producer.on('error', () => {}) // tests that expect errors listen themselves
  t.teardown(() => producer.close())
  await within(
    new Promise<void>((resolve, reject) => {
      producer.once('connect', resolve)
      producer.once('close', () => reject(new Error('producer closed before connecting')))
    }),
    10_000,
    `snapper-producer to connect to port ${port}`,
  )
  return producer
}

/** The promise form of snapper-producer's thunks. */
export function call<T>(thunk: (callback: (err: unknown, result: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => thunk((err, result) => (err ? reject(err) : resolve(result))))
}

let userCounter = 0
/** A fresh 24-hex-digit user id. */
export const newUserId = (): string =>
  (Date.now().toString(16) + (++userCounter).toString(16).padStart(8, '0') + 'a'.repeat(24)).slice(0, 24)
