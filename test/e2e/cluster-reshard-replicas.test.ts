/**
 * A Redis Cluster with a replica per master resharded under live traffic
 * (test/helpers/reshard.ts says how) by nodes with redisReplicaAcks 1: the
 * 4th master comes with a replica of its own, and every append waits for a
 * replica wherever its slot is (README, Redis Cluster).
 */
import test from 'ava'
import { reshardUnderTraffic } from '../helpers/reshard.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 1 })
})
test.after.always(() => cluster?.stop())

test('redisReplicaAcks 1, a reshard under traffic: every message delivered once and in order, no error', t =>
  reshardUnderTraffic(t, cluster!, { config: { redisReplicaAcks: 1 }, newMasterReplicas: 1 }))
