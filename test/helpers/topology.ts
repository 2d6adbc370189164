import type { TestFn } from 'ava'
import type { RedisTarget } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { createRedisClients, type RedisClients } from '../../src/redis/connect.js'
import { startRedisCluster, type RedisCluster } from './redis-cluster.js'
import { startRedis, type RedisServer } from './redis.js'

/** The Redis setups every suite that runs "on both" runs on. */
export const TOPOLOGIES = ['standalone', 'cluster'] as const
export type Topology = (typeof TOPOLOGIES)[number]

export interface RedisPerFile {
  /** What startBroker / startTestNode take for that topology. */
  target(topology: Topology): RedisTarget
  /** A process's Redis clients on that topology, connected; they quit when the test ends. */
  clients(topology: Topology, t: { teardown(fn: () => Promise<void>): void }): Promise<RedisClients>
  readonly standalone: RedisServer
  readonly cluster: RedisCluster
}

/**
 * One standalone Redis and one Redis Cluster (3 masters, 3 replicas) for the
 * test file, started together in `test.before` and stopped in
 * `test.after.always`. Tests share them, each with its own key prefix.
 */
export function redisPerFile(test: TestFn): RedisPerFile {
  let standalone: RedisServer | undefined
  let cluster: RedisCluster | undefined
  test.before(async () => {
    const [a, b] = await Promise.allSettled([startRedis(), startRedisCluster()])
    if (a.status === 'fulfilled') standalone = a.value
    if (b.status === 'fulfilled') cluster = b.value
    for (const started of [a, b]) if (started.status === 'rejected') throw started.reason
  })
  test.after.always(async () => {
    await Promise.all([standalone?.stop(), cluster?.stop()])
  })
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the ${what} of this file is not running (test.before failed?)`)
    return value
  }
  const target = (topology: Topology): RedisTarget =>
    topology === 'standalone'
      ? { kind: 'standalone', url: started(standalone, 'Redis').url }
      : started(cluster, 'Redis Cluster').target
  return {
    target,
    async clients(topology, t) {
      const clients = createRedisClients(target(topology), silentLogger)
      t.teardown(() => clients.quit())
      await clients.connect(5000)
      return clients
    },
    get standalone() {
      return started(standalone, 'Redis')
    },
    get cluster() {
      return started(cluster, 'Redis Cluster')
    },
  }
}
