/**
 * A Redis Cluster resharded under live traffic, as an operator adds capacity
 * (test/e2e/cluster-reshard*.test.ts): a 4th master joins the cluster, the
 * slots of half the rooms and users (and of the operators' questions and
 * escalations) move to it key by key, so that appends meet the slots half
 * moved (ASK, TRYAGAIN), then some move back. Meanwhile two snapper-producers
 * publish steadily to many rooms and user rooms (requests, notifications and
 * tracked messages) through two nodes, consumers of both published clients
 * receive and ack, and more consumers shake hands and join during the move.
 */
import type { ExecutionContext } from 'ava'
import { pino } from 'pino'
import { Tokens } from '../../src/auth/token.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { startNode } from '../../src/cli/node.js'
import { Keys, userRoom } from '../../src/redis/keys.js'
import { slotOf } from '../../src/redis/slot.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from './broker.js'
import { connectConsumer, type ClientKind, type TestConsumer } from './consumers.js'
import { eventually, pause } from './eventually.js'
import { uniquePrefix } from './redis.js'
import type { ClusterNodeInfo, RedisCluster } from './redis-cluster.js'

const tokens = new Tokens([TEST_SECRET])
const KINDS: ClientKind[] = ['v3 websocket', 'v4 websocket']

/** The numbers n of `<room>:<n>` a consumer got in `room`, in the order it got them. */
function numbersIn(consumer: TestConsumer, room: string): number[] {
  return consumer.messages.filter(m => m.startsWith(`${room}:`)).map(m => Number(m.slice(room.length + 1)))
}

export interface ReshardOptions {
  /** The nodes' config on top of the defaults (redisReplicaAcks, say). */
  readonly config?: Partial<Config>
  /** Replicas the 4th master gets. @default 0 */
  readonly newMasterReplicas?: number
}

/**
 * Reshards `redis` under traffic and checks what a user would: every message
 * delivered once and in order, no request failed, no warning logged,
 * deliveries never stalled, every tracked message's receipt.
 */
export async function reshardUnderTraffic(
  t: ExecutionContext,
  redis: RedisCluster,
  { config: overrides = {}, newMasterReplicas = 0 }: ReshardOptions = {},
): Promise<void> {
  const lines: { msg: string; err?: { message?: string } }[] = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const a = await startBroker(t, redis.target, overrides, logger)
  const config: Config = {
    ...defaults,
    redis: redis.target,
    redisPrefix: a.config.redisPrefix,
    tokenSecrets: [TEST_SECRET],
    drainSpreadMs: 0,
    ...overrides,
  }
  const b = await startNode(config, logger, { gateway: 0, producer: 0, admin: 0 })
  t.teardown(() => b.stop())
  const brokers = [a, b]
  const keys = new Keys(config.redisPrefix)
  const producers = [await connectProducer(t, a.ports.producer), await connectProducer(t, b.ports.producer)]
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): number => unhandled.push(err)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => void process.off('unhandledRejection', onUnhandled))

  const failed: string[] = []
  const t0 = Date.now()
  const rooms = Array.from({ length: 24 }, (_, i) => `reshard-${uniquePrefix()}-${i}`)
  const consumers: TestConsumer[] = []
  const userIds: string[] = []
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  /** A consumer on broker i % 2 in every room, from now on. */
  const addConsumer = async (i: number): Promise<TestConsumer> => {
    const userId = newUserId()
    const consumer = connectConsumer(KINDS[i % 2]!, brokers[i % 2]!.ports.gateway, tokens.sign({ userId }))
    consumers.push(consumer)
    userIds.push(userId)
    const id = await consumer.opened()
    await Promise.all(
      rooms.map(room =>
        call(producers[i % 2]!.joinRoom(room, id)).catch((err: Error) =>
          failed.push(`join ${room} (${Date.now() - t0} ms): ${err.message}`),
        ),
      ),
    )
    return consumer
  }
  for (let i = 0; i < 8; i++) await addConsumer(i)
  const firstUsers = userIds.slice()

  // Each room is one producer's, so that its order is the order sent. Message n is `<room>:<n>`.
  const sent = new Map<string, number>()
  const sentAt = new Map<string, number>()
  const tracked: { id: string; userId: string }[] = []
  let unanswered = 0
  let tick = 0
  const publishOne = (
    room: string,
    producerIndex: number,
    kind: 'notify' | 'request' | 'track',
    userId?: string,
  ): void => {
    const n = sent.get(room) ?? 0
    sent.set(room, n + 1)
    const message = `${room}:${n}`
    sentAt.set(message, Date.now())
    const producer = producers[producerIndex]!
    if (kind === 'notify') return void producer.sendMessage(room, message)
    unanswered++
    const method = kind === 'track' ? 'track' : 'publish'
    const params = kind === 'track' ? [room, message] : [[room, message]]
    producer.request(
      method,
      params,
    )((err: unknown, result: unknown) => {
      unanswered--
      if (err) failed.push(`${message} (${Date.now() - t0} ms): ${String((err as Error).message ?? err)}`)
      else if (kind === 'track') tracked.push({ id: (result as { id: string }).id, userId: userId! })
    })
  }
  const publishing = setInterval(() => {
    tick++
    const r = tick % rooms.length
    publishOne(rooms[r]!, r % 2, tick % 2 === 0 ? 'request' : 'notify')
    const u = tick % firstUsers.length
    const userId = firstUsers[u]!
    publishOne(
      userRoom(userId),
      u % 2,
      tick % 10 === 0 ? 'track' : tick % 2 === 0 ? 'request' : 'notify',
      userId,
    )
  }, 10)
  t.teardown(() => clearInterval(publishing))
  // How long a message took from send to delivery, sampled every 20 ms: a stalled room shows here.
  let maxLatencyMs = 0
  let slowest = ''
  const seen = new Map<TestConsumer, number>()
  const sampling = setInterval(() => {
    const now = Date.now()
    for (const consumer of consumers) {
      const from = seen.get(consumer) ?? 0
      for (const message of consumer.messages.slice(from)) {
        const latency = now - (sentAt.get(message) ?? now)
        if (latency > maxLatencyMs) [maxLatencyMs, slowest] = [latency, message]
      }
      seen.set(consumer, consumer.messages.length)
    }
  }, 20)
  t.teardown(() => clearInterval(sampling))

  await pause(1500)
  const added = await redis.addMaster(newMasterReplicas)
  // The slots of every other room and user, of the operators' questions and of the escalations.
  const slots = new Set<number>([slotOf('{q}'), slotOf('{esc}')])
  rooms.forEach((room, i) => i % 2 === 0 && slots.add(slotOf(keys.room(room).log)))
  firstUsers.forEach((userId, i) => i % 2 === 0 && slots.add(slotOf(keys.room(userRoom(userId)).log)))
  const movedFrom = new Map<number, ClusterNodeInfo>()
  const moveStarted = Date.now()
  // Handshakes and joins while the slots move.
  const late = (async () => {
    const joined: TestConsumer[] = []
    for (let i = 8; i < 12; i++) joined.push(await addConsumer(i))
    return joined
  })()
  for (const slot of slots) movedFrom.set(slot, await redis.moveSlot(slot, added, 20))
  // Half of them back where they were.
  let back = 0
  for (const [slot, from] of movedFrom) if (back++ % 2 === 0) await redis.moveSlot(slot, from, 20)
  const moveMs = Date.now() - moveStarted
  t.log(`moves from ${moveStarted - t0} ms to ${Date.now() - t0} ms`)
  const lateConsumers = await late
  await pause(1500)
  clearInterval(publishing)
  t.log(`${slots.size} slots moved to ${added.address} and ${Math.ceil(slots.size / 2)} back in ${moveMs} ms`)

  await eventually(() => unanswered === 0, { what: 'every request answered', timeoutMs: 20_000 })
  const firstOnes = consumers.slice(0, 8)
  const expected = (room: string): number[] => Array.from({ length: sent.get(room) ?? 0 }, (_, n) => n)
  const totalFor = (i: number): number =>
    rooms.reduce((sum, room) => sum + (sent.get(room) ?? 0), 0) + (sent.get(userRoom(firstUsers[i]!)) ?? 0)
  await eventually(() => firstOnes.every((consumer, i) => consumer.messages.length >= totalFor(i)), {
    what: 'every message delivered',
    timeoutMs: 20_000,
  }).catch(() => {})

  // Losses, duplicates and order, per consumer and room: counted and logged first, then asserted.
  let delivered = 0
  let lost = 0
  let duplicated = 0
  let outOfOrder = 0
  const checks: { got: number[]; want: number[]; what: string }[] = []
  for (const [i, consumer] of firstOnes.entries())
    for (const room of [...rooms, userRoom(firstUsers[i]!)])
      checks.push({
        got: numbersIn(consumer, room),
        want: expected(room),
        what: `consumer ${i} (${consumer.kind}), ${room}`,
      })
  // A consumer that joined during the move gets each room from its join on: consecutive, up to the last.
  for (const consumer of lateConsumers)
    for (const room of rooms) {
      const got = numbersIn(consumer, room)
      const from = got[0] ?? sent.get(room)!
      checks.push({ got, want: expected(room).slice(from), what: `late ${consumer.kind} consumer, ${room}` })
    }
  for (const { got, want } of checks) {
    delivered += got.length
    lost += want.filter(n => !got.includes(n)).length
    duplicated += got.length - new Set(got).size
    outOfOrder += got.filter((n, k) => k > 0 && n < got[k - 1]!).length
  }
  clearInterval(sampling)
  const sentCount = [...sent.values()].reduce((sum, n) => sum + n, 0)
  t.log(`${sentCount} sent, ${failed.length} requests failed; ${tracked.length} tracked`)
  t.log(`${delivered} delivered, ${lost} lost, ${duplicated} duplicated, ${outOfOrder} out of order`)
  t.log(`slowest delivery ${maxLatencyMs} ms (${slowest}); ${lines.length} warnings and errors logged`)
  const kinds = (texts: string[]): string =>
    JSON.stringify([...new Set(texts.map(text => text.replace(/.*: /, '').slice(0, 80)))].slice(0, 5))
  if (failed.length > 0) t.log(`requests failed with ${kinds(failed)}`)
  if (lines.length > 0) t.log(`logged ${kinds(lines.map(line => `${line.msg}: ${line.err?.message ?? ''}`))}`)
  for (const { got, want, what } of checks) t.deepEqual(got, want, what)
  t.true(maxLatencyMs < 3000, `slowest delivery ${maxLatencyMs} ms`)

  // Receipts: each tracked message's user acked it (the clients ack every batch).
  for (const { id, userId } of tracked) {
    const receipt = (await call(producers[0]!.request('receipt', [id]))) as { acked: { userId: string }[] }
    t.true(
      receipt.acked.some(ack => ack.userId === userId),
      `receipt ${id}: acked by ${userId}`,
    )
  }
  const health = await fetch(`http://127.0.0.1:${b.ports.admin!}/readyz`)
  t.is(health.status, 200, 'readyz')
  const metrics = await (await fetch(`http://127.0.0.1:${b.ports.admin!}/metrics`)).text()
  t.regex(metrics, /snapper_redis_up 1/)
  t.deepEqual(failed, [], 'publishes and joins that failed')
  t.deepEqual(unhandled, [], 'unhandled rejections')
  t.deepEqual(
    lines.map(line => `${line.msg}: ${line.err?.message ?? ''}`),
    [],
    'warnings and errors logged',
  )
}
