/**
 * /readyz on a Redis Cluster asks every master, not whichever node a
 * cluster PING happens to reach: one shard that does not answer stalls the
 * producers that write to it, so the node is not ready while it lasts.
 */
import test from 'ava'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { call, startAdminApp } from './harness.js'

let cluster: RedisCluster
test.before(async () => {
  cluster = await startRedisCluster()
})
test.after.always(() => cluster?.stop())

test('readyz: 503 naming the master while one master does not answer, on every probe; 200 again after', async t => {
  const h = await startAdminApp(t, cluster.target)
  t.is((await call(`${h.base}/readyz`)).status, 200)

  const paused = await cluster.masterOf('{some room}')
  // CLIENT PAUSE keeps the cluster bus running: the master stays a master, only its clients wait.
  await cluster.nodeClient(paused.port).call('CLIENT', 'PAUSE', '6000', 'ALL')
  const probes = []
  for (let i = 0; i < 4; i++) probes.push(await call(`${h.base}/readyz`))
  t.deepEqual(
    probes.map(probe => probe.status),
    [503, 503, 503, 503],
  )
  for (const probe of probes)
    t.deepEqual((probe.json as { reasons: string[] }).reasons, [
      `redis master ${paused.address}: no PING answer within 1000 ms`,
    ])
  await cluster.nodeClient(paused.port).call('CLIENT', 'UNPAUSE')
  t.is((await call(`${h.base}/readyz`)).status, 200)
})
