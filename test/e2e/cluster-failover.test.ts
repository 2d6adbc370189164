/**
 * A master of the Redis Cluster dies mid-stream (SIGKILL) and its replica
 * takes over, while a producer publishes numbered streams to rooms of that
 * master with requests, and a broker with `redisReplicaAcks: 1` answers each
 * only once a replica has it. Every answered message reaches the connected
 * consumers once, in order; a request that failed (or timed out) is retried,
 * and only its messages may arrive twice. The cluster is this file's own: a
 * failover stops the whole cluster for a moment (cluster-require-full-coverage).
 */
import test from 'ava'
import { Redis } from 'ioredis'
import { Tokens } from '../../src/auth/token.js'
import { Keys } from '../../src/redis/keys.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { namesOnOneMaster, startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { eventually, pause } from '../helpers/eventually.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  // Two replicas per master: the promoted one still has a replica to confirm the writes after it.
  cluster = await startRedisCluster({ replicasPerMaster: 2 })
})
test.after.always(() => cluster?.stop())

const tokens = new Tokens([TEST_SECRET])

/** Rejects after ms: the test then counts the request as failed (it may still be stored). */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Holds the writes of the master serving `key` for a moment (CLIENT PAUSE), so
 * that every stream's next request is in flight there when it is killed:
 * without it, a kill that lands between requests fails none of them.
 */
async function holdWrites(redis: RedisCluster, key: string): Promise<void> {
  const master = await redis.masterOf(key)
  const admin = new Redis(master.port, '127.0.0.1')
  try {
    await admin.call('CLIENT', 'PAUSE', '5000', 'WRITE')
  } finally {
    admin.disconnect()
  }
  await pause(200)
}

/** What a producer's stream to one room went through. */
interface Stream {
  readonly room: string
  /** Messages 0 .. answered - 1 were answered (each request is retried until it is). */
  answered: number
  /** Message number → requests carrying it that failed or timed out. */
  readonly failed: Map<number, number>
}

test('a master fails over mid-stream: every answered message arrives once, in order', async t => {
  const redis = cluster!
  const broker = await startBroker(t, redis.target, { redisReplicaAcks: 1 })
  const keys = new Keys(broker.config.redisPrefix)
  // Four rooms served by one master: several requests are in flight when it dies.
  const rooms = await namesOnOneMaster(redis, 'failover', 4, room => keys.room(room).log)
  const producer = await connectProducer(t, broker.ports.producer)
  const consumers: TestConsumer[] = (['v3 websocket', 'v4 websocket'] as const).map(kind =>
    connectConsumer(kind, broker.ports.gateway, tokens.sign({ userId: newUserId() })),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  for (const consumer of consumers) {
    const id = await consumer.opened()
    for (const room of rooms) t.is(await call(producer.joinRoom(room, id)), 1)
  }

  const PER_ROOM = 300
  const KILL_AT = 100
  /** Why requests failed: error text → count. */
  const errors = new Map<string, number>()
  let killed: Promise<void> | undefined
  let promoted = false
  let killFailed: unknown
  let answeredAfterPromotion = 0

  const publish = async (stream: Stream): Promise<void> => {
    const { room, failed } = stream
    // Requests of 1 to 5 numbered messages, one at a time; past PER_ROOM, single ones until the promotion.
    while (stream.answered < PER_ROOM || !promoted) {
      if (killFailed) throw killFailed
      if (stream.answered >= KILL_AT && !killed)
        killed = holdWrites(redis, keys.room(room).log)
          .then(() => redis.killMaster(keys.room(room).log))
          .then(
            nodes => {
              promoted = true
              t.log(`killed ${nodes.killed.address}, promoted ${nodes.promoted.address}`)
            },
            (err: unknown) => void (killFailed = err),
          )
      const first = stream.answered
      const numbers = Array.from({ length: first < PER_ROOM ? 1 + (first % 5) : 1 }, (_, i) => first + i)
      const deadline = Date.now() + 20_000
      for (;;) {
        try {
          await within(
            call(
              producer.request(
                'publish',
                numbers.map(n => [room, `${room}:${n}`]),
              ),
            ),
            3000,
          )
          break
        } catch (err) {
          for (const n of numbers) failed.set(n, (failed.get(n) ?? 0) + 1)
          const reason = `${(err as Error).message} ${JSON.stringify((err as { data?: unknown }).data ?? '')}`
          errors.set(reason, (errors.get(reason) ?? 0) + 1)
          if (Date.now() > deadline)
            throw new Error(`${room} ${first} never answered: ${JSON.stringify([...errors])}`)
          await pause(50) // before the retry
        }
      }
      stream.answered += numbers.length
      if (promoted) answeredAfterPromotion += numbers.length
    }
  }
  const streams: Stream[] = rooms.map(room => ({ room, answered: 0, failed: new Map() }))
  await Promise.all(streams.map(publish))
  await killed
  const failedRequests = [...errors.values()].reduce((sum, n) => sum + n, 0)
  t.true(failedRequests > 0, 'the failover made requests fail (else it proved nothing)')
  t.true(answeredAfterPromotion > 0, 'messages were answered after the promotion')
  t.log(`answered: ${streams.map(s => s.answered).join(', ')}; failures: ${JSON.stringify([...errors])}`)

  for (const consumer of consumers) {
    // Wait until every answered message arrived at least once (or give up and show what is missing).
    const total = streams.reduce((sum, stream) => sum + stream.answered, 0)
    await eventually(() => new Set(consumer.messages).size >= total, { timeoutMs: 30_000 }).catch(() => {})
    const byRoom = splitByRoom(consumer, streams)
    for (const stream of streams) {
      const received = byRoom.get(stream.room) ?? []
      const counts = new Map<number, number>()
      const firsts: number[] = []
      for (const n of received) {
        if (!counts.has(n)) firsts.push(n)
        counts.set(n, (counts.get(n) ?? 0) + 1)
      }
      const where = `${consumer.kind} ${stream.room}`
      const missing = Array.from({ length: stream.answered }, (_, n) => n).filter(n => !counts.has(n))
      t.deepEqual(missing, [], `${where}: answered messages missing`)
      const extra = [...counts].filter(([n, count]) => count > 1 + (stream.failed.get(n) ?? 0))
      t.deepEqual(extra, [], `${where}: more copies than failed attempts`)
      t.true(
        firsts.every((n, i) => i === 0 || n > firsts[i - 1]!),
        `${where}: out of order`,
      )
    }
  }
})

/** The numbers a consumer received, per room (messages are `<room>:<n>`). */
function splitByRoom(consumer: TestConsumer, streams: readonly Stream[]): Map<string, number[]> {
  const byRoom = new Map<string, number[]>(streams.map(stream => [stream.room, []]))
  for (const message of consumer.messages) {
    const colon = message.lastIndexOf(':')
    byRoom.get(message.slice(0, colon))?.push(Number(message.slice(colon + 1)))
  }
  return byRoom
}
