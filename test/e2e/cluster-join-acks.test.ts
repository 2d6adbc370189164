/**
 * redisReplicaAcks 1 on a Redis Cluster: a subscribe or unsubscribe is
 * answered only once the consumer's master has passed it to its replica
 * (README, Redis Cluster: What each setup guarantees), so one answered
 * survives a failover to that replica, even one cut off from its master
 * just after (the technique of cluster-data-loss.test.ts: the replica
 * stopped, its link killed, then the master killed). One a replica did not
 * confirm in time gets STORE_UNAVAILABLE.
 */
import test from 'ava'
import { Keys } from '../../src/redis/keys.js'
import { call, connectProducer, startBroker } from '../helpers/broker.js'
import { eventually, pause } from '../helpers/eventually.js'
import { startRedisCluster, type ClusterNodeInfo, type RedisCluster } from '../helpers/redis-cluster.js'
import { uniquePrefix } from '../helpers/redis.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster()
})
test.after.always(() => cluster?.stop())

/** The redis-server process behind a cluster node. */
async function pidOf(redis: RedisCluster, node: ClusterNodeInfo): Promise<number> {
  const info = await redis.nodeClient(node.port).info('server')
  return Number(/process_id:(\d+)/.exec(info)![1])
}

/** Resumes a stopped process; once the test ends, whatever happened. */
function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT')
  } catch {
    // it is gone (a killed master): nothing to resume
  }
}

test('redisReplicaAcks 1: joins and leaves wait for the replica, and the answered ones survive its promotion', async t => {
  const redis = cluster!
  const prefix = uniquePrefix()
  const keys = new Keys(prefix)
  const node = await startBroker(t, redis.target, { redisPrefix: prefix, redisReplicaAcks: 1 })
  const producer = await connectProducer(t, node.ports.producer)

  // Four consumers (they need not be online) whose records live on one master.
  const master = await redis.masterOf(keys.consumer('c0').rooms)
  const ids: string[] = []
  for (let i = 0; ids.length < 4; i++)
    if ((await redis.masterOf(keys.consumer(`c${i}`).rooms)).port === master.port) ids.push(`c${i}`)
  const [kept, left, late, cut] = ids as [string, string, string, string]
  const replicaPorts: number[] = []
  for (const { port } of redis.nodes) {
    const [role, , masterPort] = (await redis.nodeClient(port).call('ROLE')) as [string, string, number]
    if (role === 'slave' && masterPort === master.port) replicaPorts.push(port)
  }
  t.is(replicaPorts.length, 1)
  const replica = redis.nodes.find(({ port }) => port === replicaPorts[0])!
  const replicaPid = await pidOf(redis, replica)
  const masterPid = await pidOf(redis, master)
  t.teardown(() => resume(replicaPid))

  t.is(await call(producer.joinRoom('news', kept)), 1)
  t.is(await call(producer.joinRoom('news', left)), 1)

  // The replica stalls (its link kept): a join and a leave wait for it, and are answered once it confirms.
  process.kill(replicaPid, 'SIGSTOP')
  const stalledAt = Date.now()
  let answered = 0
  const joined = call(producer.joinRoom('news', late)).finally(() => answered++)
  const leaving = call(producer.leaveRoom('news', left)).finally(() => answered++)
  await pause(400)
  t.is(answered, 0, 'nothing answered while the replica does not confirm')
  process.kill(replicaPid, 'SIGCONT')
  t.is(await joined, 1)
  t.is(await leaving, 1)
  t.log(`join answered ${Date.now() - stalledAt} ms after the replica stalled (resumed at 400 ms)`)

  // The replica is cut off: a join waits for WAIT's timeout and is refused, though the master has it.
  process.kill(replicaPid, 'SIGSTOP')
  await redis.nodeClient(master.port).call('CLIENT', 'KILL', 'TYPE', 'replica')
  const cutAt = Date.now()
  const refused: unknown = await call(producer.joinRoom('news', cut)).then(
    result => ({ result }),
    (err: unknown) => err,
  )
  const refusedAfterMs = Date.now() - cutAt
  t.like(refused, { code: -32003, data: { code: 'STORE_UNAVAILABLE', temporary: true } })
  t.true(refusedAfterMs >= 900, `refused only after the WAIT timeout (1 s): ${refusedAfterMs} ms`)
  t.truthy(await redis.nodeClient(master.port).hget(keys.consumer(cut).rooms, 'news'), 'the master has it')

  // The master dies; the replica, which lacks that last join, takes over.
  process.kill(masterPid, 'SIGKILL')
  resume(replicaPid)
  const promoted = redis.nodeClient(replica.port)
  await eventually(
    async () => {
      const slots = (await promoted.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
      return (
        ((await promoted.call('ROLE')) as [string])[0] === 'master' &&
        slots.some(([, , [, port]]) => port === replica.port)
      )
    },
    { what: 'the replica to take over', timeoutMs: 20_000 },
  )
  const roomsOf = async (id: string): Promise<string[]> =>
    Object.keys(await promoted.hgetall(keys.consumer(id).rooms)).sort()
  t.deepEqual(await roomsOf(kept), ['news'], 'a join answered before the replica stalled')
  t.deepEqual(await roomsOf(late), ['news'], 'a join answered once the stalled replica confirmed it')
  t.deepEqual(await roomsOf(left), [], 'a leave answered once the stalled replica confirmed it')
  t.deepEqual(await roomsOf(cut), [], 'the refused join: lost with the master, as its refusal warned')
})
