/**
 * A Redis Cluster fails over to a replica that had not received the last
 * writes (README, Faults: after Redis lost data): the replica is cut off
 * from its master (stopped, its link killed), consumers connect and join a
 * room while the master alone takes their records, then the master dies and
 * the replica takes over without them, and without the last entries of the
 * room logs. Two nodes, snapper-producer publishing to a shared room and to
 * each user's own room (all on that master), snapper-consumer,
 * engine.io-client and the SDK consuming: every message published after the
 * master died reaches every consumer once and in order, the consumers keep
 * their rooms and count as online, and nothing is logged at error level.
 */
import test from 'ava'
import { pino } from 'pino'
import { Tokens } from '../../src/auth/token.js'
import { Keys } from '../../src/redis/keys.js'
import type { Consumer } from '../../src/sdk/consumer/node.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer, type ClientKind, type TestConsumer } from '../helpers/consumers.js'
import {
  assertEveryMessageAfterLoss,
  deliveriesResumed,
  numbered,
  publishEvery10ms,
} from '../helpers/data-loss.js'
import { eventually, pause } from '../helpers/eventually.js'
import { startRedisCluster, type ClusterNodeInfo, type RedisCluster } from '../helpers/redis-cluster.js'
import { uniquePrefix } from '../helpers/redis.js'
import { collect, consumerFor } from '../sdk/helpers.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster()
})
test.after.always(() => cluster?.stop())

const tokens = new Tokens([TEST_SECRET])

/** The redis-server process behind a cluster node. */
async function pidOf(redis: RedisCluster, node: ClusterNodeInfo): Promise<number> {
  const info = await redis.nodeClient(node.port).info('server')
  return Number(/process_id:(\d+)/.exec(info)![1])
}

test('a failover to a replica that lacks the newest consumers’ records and log entries', async t => {
  const redis = cluster!
  const errors: string[] = []
  const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) })
  const settings = { redisPrefix: uniquePrefix(), nodeTtlMs: 1500, drainTimeoutMs: 2000 }
  const keys = new Keys(settings.redisPrefix)
  const a = await startBroker(t, redis.target, settings, logger)
  const b = await startBroker(t, redis.target, settings, logger)
  const admin = redis.client()

  // The shared room and every user on one master, the one that will die.
  const master = await redis.masterOf(keys.room('news').log)
  const usersOnMaster = async (count: number): Promise<string[]> => {
    const users: string[] = []
    while (users.length < count) {
      const user = newUserId()
      if ((await redis.masterOf(keys.presence(user))).port === master.port) users.push(user)
    }
    return users
  }
  const users = await usersOnMaster(6)
  const replicaPorts: number[] = []
  for (const node of redis.nodes) {
    const [role, , port] = (await redis.nodeClient(node.port).call('ROLE')) as [string, string, number]
    if (role === 'slave' && port === master.port) replicaPorts.push(node.port)
  }
  t.is(replicaPorts.length, 1)
  const replica = redis.nodes.find(node => node.port === replicaPorts[0])!

  const legacy: TestConsumer[] = []
  const sdkReceived: ReturnType<typeof collect>[] = []
  t.teardown(() => legacy.forEach(consumer => consumer.close()))
  const producer = await connectProducer(t, b.ports.producer)
  /** Connects a consumer of each kind for three users (on both nodes) and joins them to the shared room. */
  const connectThree = async (
    [v3User, v4User, sdkUser]: string[],
    kinds: [ClientKind, ClientKind],
  ): Promise<string[]> => {
    const added = [
      connectConsumer(kinds[0], a.ports.gateway, tokens.sign({ userId: v3User }), { reconnectMs: 200 }),
      connectConsumer(kinds[1], b.ports.gateway, tokens.sign({ userId: v4User }), { reconnectMs: 200 }),
    ]
    legacy.push(...added)
    const sdk: Consumer = consumerFor(
      t,
      (legacy.length > 2 ? b : a).ports.gateway,
      tokens.sign({ userId: sdkUser }),
    )
    sdkReceived.push(collect(sdk))
    const ids = [...(await Promise.all(added.map(consumer => consumer.opened()))), await sdk.connect()]
    for (const id of ids) t.is(await call(producer.joinRoom('news', id)), 1)
    return ids
  }
  const earlier = await connectThree(users.slice(0, 3), ['v3 default', 'v4 websocket'])

  const publisher = publishEvery10ms(producer, users)
  t.teardown(() => publisher.stop())
  // In the order of `users`: each connectThree adds a v3, a v4 and an SDK consumer.
  const received = (): string[][] =>
    sdkReceived.flatMap((sdk, i) => [legacy[2 * i]!.messages, legacy[2 * i + 1]!.messages, sdk.messages()])
  await eventually(() => received().every(messages => messages.length > 20), { what: 'deliveries under way' })

  // The replica stops taking the master's writes: stopped, and its link closed by the master.
  const replicaPid = await pidOf(redis, replica)
  const masterPid = await pidOf(redis, master)
  process.kill(replicaPid, 'SIGSTOP')
  t.teardown(() => {
    try {
      process.kill(replicaPid, 'SIGCONT')
    } catch {
      // it ran already
    }
  })
  await redis.nodeClient(master.port).call('CLIENT', 'KILL', 'TYPE', 'replica')
  const cutAt = publisher.next
  // Consumers that connect and join now: their records are on the master alone.
  const later = await connectThree(users.slice(3), ['v3 websocket', 'v4 default'])
  const ids = [...earlier, ...later]
  for (const id of later) t.truthy(await admin.hget(keys.consumer(id).rooms, 'news'))
  await eventually(() => received().every(messages => numbered(messages, 'news', cutAt).length > 20), {
    what: 'deliveries to the later consumers',
  })

  const masterOffset = await redis.nodeClient(master.port).info('replication')
  process.kill(masterPid, 'SIGKILL')
  const lossAt = publisher.next
  const killedAtMs = Date.now()
  process.kill(replicaPid, 'SIGCONT')
  await pause(300) // the replica reads what its link had buffered
  const replicaOffset = await redis.nodeClient(replica.port).info('replication')
  const offsetOf = (info: string, field: string): number =>
    Number(new RegExp(`${field}:(\\d+)`).exec(info)![1])
  const behind = offsetOf(masterOffset, 'master_repl_offset') - offsetOf(replicaOffset, 'master_repl_offset')
  t.log(`the replica is ${behind} bytes of replication stream behind the master`)
  t.true(behind > 0, 'the replica lacks the master’s last writes')
  await eventually(
    async () => {
      const slots = (await redis.nodeClient(replica.port).call('CLUSTER', 'SLOTS')) as [
        number,
        number,
        [string, number],
      ][]
      return (
        ((await redis.nodeClient(replica.port).call('ROLE')) as [string])[0] === 'master' &&
        slots.some(([, , [, port]]) => port === replica.port)
      )
    },
    { what: 'the replica to take over', timeoutMs: 20_000 },
  )
  const promotedAtMs = Date.now()
  t.log(`replica promoted ${promotedAtMs - killedAtMs} ms after the master died`)

  let inNews: boolean[] = []
  const restored = async (): Promise<boolean> => {
    inNews = await Promise.all(
      ids.map(async id => (await admin.hget(keys.consumer(id).rooms, 'news')) !== null),
    )
    return inNews.every(Boolean)
  }
  await eventually(() => restored().catch(() => false), {
    what: () => `every record in the shared room again: ${inNews.join(', ')}`,
    timeoutMs: 10_000,
  })
  t.log(`records written again ${Date.now() - promotedAtMs} ms after the promotion`)

  await deliveriesResumed(received, lossAt)
  t.log(`deliveries resumed ${Date.now() - killedAtMs} ms after the master died`)
  await pause(1000)
  await publisher.stop()
  await assertEveryMessageAfterLoss(t, {
    received,
    from: lossAt,
    to: publisher.next,
    since: 'the master died',
    admin,
    keys,
    consumerIds: ids,
    userIds: users,
    producer,
  })
  t.log(
    `gap notices: ${legacy.map(consumer => JSON.stringify(consumer.gaps.map(gap => [gap.room.slice(0, 8), gap.missed]))).join(' ')}`,
  )
  t.deepEqual(errors, [], 'nothing logged at error level')
})
