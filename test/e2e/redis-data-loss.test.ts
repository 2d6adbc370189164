/**
 * Redis loses data under live traffic (README, Faults: after Redis lost
 * data): flushed, restarted empty, a room's head deleted, restarted from an
 * older snapshot. Two nodes on one redis-server, snapper-producer publishing
 * to a shared room and to each user's own room, snapper-consumer,
 * engine.io-client and the SDK consuming: every message published after the
 * loss reaches every consumer, once and in order, the consumers stay in
 * their rooms and count as online, and nothing is logged at error level.
 */
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { Tokens } from '../../src/auth/token.js'
import { Keys } from '../../src/redis/keys.js'
import type { Consumer } from '../../src/sdk/consumer/node.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { assertEveryMessageAfterLoss, deliveriesResumed, publishEvery10ms } from '../helpers/data-loss.js'
import { eventually, pause } from '../helpers/eventually.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { collect, consumerFor } from '../sdk/helpers.js'

const tokens = new Tokens([TEST_SECRET])

type Loss = (redis: RedisServer, admin: ReturnType<RedisServer['client']>, prefix: string) => Promise<void>

async function survives(t: ExecutionContext, loss: Loss, before: Loss = async () => {}): Promise<void> {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = redis.client()
  const errors: string[] = []
  const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) })
  // Liveness refreshed every 500 ms: a lost liveness key is found within that.
  const settings = { redisPrefix: uniquePrefix(), nodeTtlMs: 1500, drainTimeoutMs: 2000 }
  const a = await startBroker(t, redis.url, settings, logger)
  const b = await startBroker(t, redis.url, settings, logger)
  const users = [newUserId(), newUserId(), newUserId()]
  const legacy = [
    connectConsumer('v3 default', a.ports.gateway, tokens.sign({ userId: users[0] }), { reconnectMs: 200 }),
    connectConsumer('v4 websocket', b.ports.gateway, tokens.sign({ userId: users[1] }), { reconnectMs: 200 }),
  ]
  t.teardown(() => legacy.forEach(consumer => consumer.close()))
  const sdk: Consumer = consumerFor(t, a.ports.gateway, tokens.sign({ userId: users[2] }))
  const sdkReceived = collect(sdk)
  const ids = [...(await Promise.all(legacy.map(consumer => consumer.opened()))), await sdk.connect()]
  const producer = await connectProducer(t, b.ports.producer)
  for (const id of ids) await call(producer.joinRoom('news', id))

  const publisher = publishEvery10ms(producer, users)
  t.teardown(() => publisher.stop())
  const received = (): string[][] => [...legacy.map(consumer => consumer.messages), sdkReceived.messages()]
  await eventually(() => received().every(messages => messages.length > 50), { what: 'deliveries under way' })
  await before(redis, admin, settings.redisPrefix)
  await pause(500)
  await loss(redis, admin, settings.redisPrefix)
  const lossAt = publisher.next
  const lostAtMs = Date.now()
  await deliveriesResumed(received, lossAt)
  t.log(`deliveries resumed ${Date.now() - lostAtMs} ms after the loss`)
  await pause(2000)
  await publisher.stop()
  await assertEveryMessageAfterLoss(t, {
    received,
    from: lossAt,
    to: publisher.next,
    since: 'the loss',
    admin,
    keys: new Keys(settings.redisPrefix),
    consumerIds: ids,
    userIds: users,
    producer,
  })
  t.deepEqual(errors, [], 'nothing logged at error level')
}

test.serial('FLUSHALL', t => survives(t, (_, admin) => admin.flushall().then(() => {})))

test.serial('FLUSHALL, then a subscriber reconnect (its reconcile reads the consumers’ rooms)', t =>
  survives(t, async (_, admin) => {
    await admin.flushall()
    await pause(1000) // the nodes' liveness refresh finds their keys gone, and their consumers' records
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  }),
)

test.serial('redis-server restarted empty', t =>
  survives(t, async redis => {
    await redis.kill('SIGKILL')
    await redis.restart()
  }),
)

test.serial('the head of the busy shared room deleted', t =>
  survives(t, async (_, admin, prefix) => {
    t.is(await admin.del(`${prefix}:{r:news}:head`), 1)
  }),
)

test.serial('redis-server restarted from an older snapshot', t =>
  survives(
    t,
    async redis => {
      await redis.kill('SIGKILL')
      await redis.restart()
    },
    async (_, admin) => {
      await admin.save()
    },
  ),
)
