/**
 * A Redis Cluster without replicas resharded under live traffic
 * (test/helpers/reshard.ts says how).
 */
import test from 'ava'
import { reshardUnderTraffic } from '../helpers/reshard.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 0 })
})
test.after.always(() => cluster?.stop())

test('a reshard under traffic: every message delivered once and in order, no error, deliveries go on', t =>
  reshardUnderTraffic(t, cluster!))
