import { Redis } from 'ioredis'
import { startRedis } from '../../test/helpers/redis.js'
import { startRedisCluster } from '../../test/helpers/redis-cluster.js'

/** The bench's Redis: one redis-server, or (`--redis-cluster`) a Redis Cluster of 3 masters; counters summed over its servers. */
export interface BenchRedis {
  /** SNAPPER_REDIS's form: one URL, or a cluster's nodes comma-separated. */
  readonly url: string
  /** The servers' processes, whose CPU is the Redis column. */
  readonly pids: readonly number[]
  /** What the column headers and RESULTS.md say Redis was. */
  readonly label: string
  /** Empties every key and resets INFO commandstats, between runs. */
  reset(): Promise<void>
  /** Resets INFO commandstats only (the start of a window). */
  resetStats(): Promise<void>
  /** Calls per command since the last reset, from INFO commandstats. */
  commandCalls(): Promise<Map<string, number>>
  /** Since the last reset: bytes read from and written to clients; and CPU seconds since start (not reset). */
  traffic(): Promise<{ inputBytes: number; outputBytes: number; cpuS: number }>
  /** Bytes of data Redis holds (INFO memory used_memory: keys, values, client buffers; not allocator slack). */
  usedMemory(): Promise<number>
  /** Keys Redis holds (DBSIZE). */
  keyCount(): Promise<number>
  stop(): Promise<void>
}

/** A throwaway redis-server on a free port, or a cluster of 3 masters without replicas; no persistence. */
export async function startBenchRedis(cluster = false): Promise<BenchRedis> {
  if (cluster) {
    const servers = await startRedisCluster({ replicasPerMaster: 0 })
    const clients = servers.nodes.map(({ port }) => servers.nodeClient(port))
    return benchRedis(
      clients,
      servers.nodes.map(({ address }) => address).join(','),
      'a Redis Cluster of 3 masters',
      () => servers.stop(),
    )
  }
  const server = await startRedis(['--maxclients', '20000'])
  const client = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
  client.on('error', () => {}) // a failed command rejects; the bench reports that
  return benchRedis([client], server.url, 'one redis-server', async () => {
    client.disconnect()
    await server.stop()
  })
}

/** The bench's own reads (INFO, FLUSHALL) through a plain client per server, not counted in any target's work. */
async function benchRedis(
  clients: readonly Redis[],
  url: string,
  label: string,
  stop: () => Promise<void>,
): Promise<BenchRedis> {
  const pids = await Promise.all(
    clients.map(async client => Number(/^process_id:(\d+)/m.exec(await client.info('server'))?.[1])),
  )
  const each = <T>(read: (client: Redis) => Promise<T>): Promise<T[]> => Promise.all(clients.map(read))
  const sum = (values: readonly number[]): number => values.reduce((total, value) => total + value, 0)
  const resetStats = async (): Promise<void> => {
    await each(client => client.config('RESETSTAT'))
  }
  return {
    url,
    pids,
    label,
    async reset() {
      await each(client => client.flushall())
      await resetStats()
    },
    resetStats,
    async commandCalls() {
      const calls = new Map<string, number>()
      for (const info of await each(client => client.info('commandstats')))
        for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
          calls.set(match[1]!, (calls.get(match[1]!) ?? 0) + Number(match[2]))
      return calls
    },
    async traffic() {
      const infos = await each(client => client.info())
      const field = (name: string): number =>
        sum(infos.map(info => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1])))
      return {
        inputBytes: field('total_net_input_bytes'),
        outputBytes: field('total_net_output_bytes'),
        cpuS: field('used_cpu_user') + field('used_cpu_sys'),
      }
    },
    async usedMemory() {
      return sum(
        await each(async client => Number(/^used_memory:(\d+)/m.exec(await client.info('memory'))?.[1])),
      )
    },
    async keyCount() {
      return sum(await each(client => client.dbsize()))
    },
    stop,
  }
}
