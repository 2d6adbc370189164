/**
 * /readyz on a Redis Cluster asks every master, not whichever node a
 * cluster PING happens to reach, and names each that does not answer. One
 * such shard leaves it 200 `degraded`: every node shares that master, so a
 * 503 would take every node out of the load balancer, and with them the
 * consumers and rooms on the masters that answer (test/e2e/cluster-stall.test.ts).
 */
import test from 'ava'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { call, startAdminApp } from './harness.js'

let cluster: RedisCluster
test.before(async () => {
  cluster = await startRedisCluster()
})
test.after.always(() => cluster?.stop())

test('readyz: 200 degraded naming the master while one master does not answer, on every probe; ok again after', async t => {
  const h = await startAdminApp(t, cluster.target)
  t.is((await call(`${h.base}/readyz`)).status, 200)

  const paused = await cluster.masterOf('{some room}')
  // CLIENT PAUSE keeps the cluster bus running: the master stays a master, only its clients wait.
  await cluster.nodeClient(paused.port).call('CLIENT', 'PAUSE', '6000', 'ALL')
  const probes = []
  for (let i = 0; i < 4; i++) probes.push(await call(`${h.base}/readyz`))
  t.deepEqual(
    probes.map(probe => probe.status),
    [200, 200, 200, 200],
  )
  for (const probe of probes)
    t.deepEqual(probe.json, {
      status: 'degraded',
      reasons: [`redis master ${paused.address}: no PING answer within 1000 ms`],
    })
  await cluster.nodeClient(paused.port).call('CLIENT', 'UNPAUSE')
  t.deepEqual((await call(`${h.base}/readyz`)).json, { status: 'ok' })
})
