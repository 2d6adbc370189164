/**
 * Micro-benchmark: what rooms new to a node cost it between the handshakes
 * of their consumers and the rooms being live. C consumers, each in R rooms
 * no other consumer is in (C × R rooms new to the node), are written
 * straight into their records, then connect at once (in-process sessions,
 * RecordingSink: no gateway); then one message is published to each
 * consumer's last room, which reaches it once that room is live.
 *
 *   node dist/bench/micro/new-rooms.js [C×R ...]   (default 100x1000 10x10000)
 *
 * Prints per size: the connects (all handshakes answered), the time until
 * every consumer received its message (from the start of the connects), the
 * worst event-loop delay meanwhile, the node's CPU time, Redis's CPU time,
 * and Redis's calls per new room by command (INFO commandstats).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { consumerIdOf } from '../../src/auth/token.js'
import { createBrokerCore } from '../../src/broker/core.js'
import { BrokerNode } from '../../src/broker/node.js'
import { silentLogger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { publishAll, RecordingSink, testConfig } from '../../test/helpers/broker.js'
import { startRedis } from '../../test/helpers/redis.js'

const sizes = (process.argv.length > 2 ? process.argv.slice(2) : ['100x1000', '10x10000']).map(size => {
  const [consumers, rooms] = size.split('x').map(Number)
  if (!consumers || !rooms) throw new Error(`not a size: ${size} (want CxR, e.g. 100x1000)`)
  return { consumers, rooms }
})

/** Redis's used CPU (s) and calls by command, from INFO. */
async function redisCounters(
  info: () => Promise<string>,
): Promise<{ cpuS: number; calls: Map<string, number> }> {
  const text = await info()
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0)
  const calls = new Map<string, number>()
  for (const [, command, count] of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    calls.set(command!, Number(count))
  return { cpuS: field('used_cpu_user') + field('used_cpu_sys'), calls }
}

const server = await startRedis()
const admin = server.client()
try {
  for (const { consumers, rooms } of sizes) {
    const config = testConfig(server.url, { maxRoomsPerConsumer: 2 ** 31 - 1 })
    const clients = createRedisClients(config.redis, silentLogger)
    const core = createBrokerCore(config, clients, silentLogger)
    const node = new BrokerNode(core, config, silentLogger)
    await clients.connect(5000)
    await node.start()
    const ids = Array.from({ length: consumers }, (_, c) => {
      const userId = 'b' + (c + 1).toString(16).padStart(23, '0') // unique: a pad of 'b' made 0x1 and 0xb1 one user
      return { userId, consumerId: consumerIdOf({ userId, exp: Math.floor(Date.now() / 1000) + 3600 }) }
    })
    const lastRoom = (c: number): string => `c${c}/r${rooms - 1}`
    for (const [c, { consumerId }] of ids.entries()) {
      const record = core.keys.consumer(consumerId).rooms
      for (let from = 0; from < rooms; from += 10_000) {
        const fields: string[] = []
        for (let r = from; r < Math.min(rooms, from + 10_000); r++) fields.push(`c${c}/r${r}`, '0-0')
        await admin.hset(record, ...fields)
      }
    }
    const info = async (): Promise<string> => (await admin.info('cpu')) + (await admin.info('commandstats'))
    await admin.config('RESETSTAT')
    const redisBefore = await redisCounters(info)
    const delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
    const cpuBefore = process.cpuUsage()
    const startedAt = performance.now()
    const sinks = await Promise.all(
      ids.map(({ consumerId, userId }) => new RecordingSink(node).connect(consumerId, userId)),
    )
    const connectedMs = performance.now() - startedAt
    await Promise.all(ids.map((_, c) => publishAll(core.producerApi, lastRoom(c), [`to ${c}`])))
    await Promise.all(sinks.map(sink => sink.waitFor(1, 600_000)))
    const liveMs = performance.now() - startedAt
    const cpu = process.cpuUsage(cpuBefore)
    delay.disable()
    const redisAfter = await redisCounters(info)
    const newRooms = consumers * rooms
    const perRoom = [...redisAfter.calls]
      .map(
        ([command, calls]) => [command, (calls - (redisBefore.calls.get(command) ?? 0)) / newRooms] as const,
      )
      .filter(([, calls]) => calls >= 0.01)
      .sort((a, b) => b[1] - a[1])
      .map(([command, calls]) => `${command} ${calls.toFixed(2)}`)
      .join(', ')
    console.log(
      `${consumers} x ${rooms}: connected ${connectedMs.toFixed(0)} ms, all live ${liveMs.toFixed(0)} ms, ` +
        `worst loop delay ${(delay.max / 1e6).toFixed(0)} ms, node CPU ${((cpu.user + cpu.system) / 1e3).toFixed(0)} ms, ` +
        `Redis CPU ${((redisAfter.cpuS - redisBefore.cpuS) * 1e3).toFixed(0)} ms; per new room: ${perRoom}`,
    )
    await node.stop(0)
    await clients.quit()
    await admin.flushall()
  }
} finally {
  admin.disconnect()
  await server.stop()
}
