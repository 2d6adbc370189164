import { Redis } from 'ioredis'
import { startRedis } from '../../test/helpers/redis.js'

export interface BenchRedis {
  readonly port: number
  readonly url: string
  readonly pid: number
  /** A plain client for the bench's own reads (INFO, FLUSHALL); not counted in any target's work. */
  readonly client: Redis
  /** Empties every key and resets INFO commandstats, between runs. */
  reset(): Promise<void>
  /** Calls per command since the last reset, from INFO commandstats. */
  commandCalls(): Promise<Map<string, number>>
  /** Since the last reset: bytes read from and written to clients; and CPU seconds since start (not reset). */
  traffic(): Promise<{ inputBytes: number; outputBytes: number; cpuS: number }>
  /** Bytes of data Redis holds (INFO memory used_memory: keys, values, client buffers; not allocator slack). */
  usedMemory(): Promise<number>
  stop(): Promise<void>
}

/** A throwaway redis-server on a free port: no persistence, its own directory, enough clients for 10,000 consumers' peers. */
export async function startBenchRedis(): Promise<BenchRedis> {
  const server = await startRedis(['--maxclients', '20000'])
  const client = new Redis(server.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
  client.on('error', () => {}) // a failed command rejects; the bench reports that
  await client.ping()
  return {
    port: server.port,
    url: server.url,
    pid: server.pid,
    client,
    async reset() {
      await client.flushall()
      await client.config('RESETSTAT')
    },
    async commandCalls() {
      const info = await client.info('commandstats')
      const calls = new Map<string, number>()
      for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
        calls.set(match[1]!, Number(match[2]))
      return calls
    },
    async traffic() {
      const info = await client.info()
      const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1])
      return {
        inputBytes: field('total_net_input_bytes'),
        outputBytes: field('total_net_output_bytes'),
        cpuS: field('used_cpu_user') + field('used_cpu_sys'),
      }
    },
    async usedMemory() {
      const info = await client.info('memory')
      return Number(/^used_memory:(\d+)/m.exec(info)?.[1])
    },
    async stop() {
      client.disconnect()
      await server.stop()
    },
  }
}
