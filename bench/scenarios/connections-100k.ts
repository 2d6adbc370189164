/**
 * connections-100k: 100,000 idle consumers on one machine, past what one
 * process may hold (its open-files limit, 20,000 here). The consumers are
 * dealt over the Snapper workers (`--workers N`, each its own gateway) and
 * come from generator processes (`--generators N`), so that every process
 * stays under its limit, and from several source addresses (127.0.0.2 …:
 * one has only its ephemeral port range). What `connections` measures,
 * plus: Redis memory and keys per consumer (INFO used_memory, DBSIZE, before
 * and once idle), broker and Redis CPU per handshake, the broker's share of
 * the CPU used in the storm (the generators take most of the rest), and the
 * most files any worker and any generator held; then what the idle
 * consumers cost over 100 s (one ttl refresh and four pings each): broker
 * and Redis CPU in µs per connection per second, as many cores per million
 * connections. A handshake closed before its open packet is counted and
 * connected again after the storm (as a client would), so the memory is
 * that of every consumer.
 *
 *   npm run bench -- connections-100k --workers 6 --generators 6
 *
 * Runs only when named (and at 300 consumers with --smoke).
 */
import { readFileSync } from 'node:fs'
import { openFilesLimit } from '../../src/open-files.js'
import { openFiles } from '../lib/proc.js'
import { type RunContext, type Scenario, sleep } from '../lib/scenario.js'
import { connectIdle, idleColumns, idleMetrics } from './connections.js'

/**
 * The idle window: with Snapper's defaults, every consumer's keys are
 * refreshed once in it (every replacedConsumerTtlSec / 3 = 100 s) and every
 * consumer is pinged four times (pingIntervalMs, 25 s).
 */
const IDLE_WINDOW_MS = 100_000

/** Files a process needs besides its consumers' sockets: Redis, listeners, IPC, libuv, node itself. */
const FILES_RESERVED = 1000

function portsPerAddress(): number {
  const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)
  return Number(high) - Number(low) + 1
}

/** Fails the run before it starts when a process or a source address would run out. */
function checkLimits(ctx: RunContext, consumers: number): void {
  const perProcess = openFilesLimit() - FILES_RESERVED
  const needed = Math.ceil(consumers / perProcess)
  const workers = ctx.target.pids.length
  const generators = Math.max(1, ctx.pool.pids.length)
  if (workers < needed || generators < needed)
    throw new Error(
      `${consumers} consumers need ≥ ${needed} Snapper workers and ≥ ${needed} generator processes ` +
        `(--workers ${needed} --generators ${needed}: open files ${openFilesLimit()} per process); ` +
        `have ${workers} and ${generators}`,
    )
  const ports = ctx.localAddresses.length * portsPerAddress()
  if (consumers > 0.8 * ports)
    throw new Error(
      `${consumers} consumers: ${ctx.localAddresses.length} source addresses have ${ports} ports`,
    )
}

export const connections100k: Scenario = {
  name: 'connections-100k',
  title: 'connections: 100,000 idle consumers over several workers and generator processes',
  targets: ['snapper'],
  noise: false,
  onlyWhenNamed: true,
  generatorProcesses: true,
  timeoutMs: 600_000,
  headline: 'connectsPerSec',
  metrics: [
    ...idleColumns('RSS, all workers'),
    { key: 'failedConnects', label: 'closed before open', unit: '', better: 'lower' },
    { key: 'redisPerConsumerBytes', label: 'Redis/consumer', unit: 'B', better: 'lower', digits: 0 },
    { key: 'redisKeysPerConsumer', label: 'Redis keys/consumer', unit: '', better: 'lower', digits: 2 },
    { key: 'brokerUsPerConnect', label: 'broker CPU/connect', unit: 'µs', better: 'lower', digits: 0 },
    { key: 'redisUsPerConnect', label: 'Redis CPU/connect', unit: 'µs', better: 'lower', digits: 0 },
    { key: 'brokerSharePct', label: 'broker CPU share', unit: '%', better: 'none', digits: 0 },
    { key: 'idleBrokerUs', label: 'idle broker CPU', unit: 'µs/conn/s', better: 'lower', digits: 2 },
    { key: 'idleRedisUs', label: 'idle Redis CPU', unit: 'µs/conn/s', better: 'lower', digits: 2 },
    { key: 'maxFilesWorker', label: 'files, busiest worker', unit: '', better: 'none' },
    { key: 'maxFilesGenerator', label: 'files, busiest generator', unit: '', better: 'none' },
  ],
  async run(ctx) {
    const consumers = ctx.smoke ? 300 : 100_000
    checkLimits(ctx, consumers)
    const redisBefore = { bytes: await ctx.redis.usedMemory(), keys: await ctx.redis.keyCount() }
    const idle = await connectIdle(ctx, consumers, { retryFailed: true, inFlight: 1000 })
    const redisAfter = { bytes: await ctx.redis.usedMemory(), keys: await ctx.redis.keyCount() }
    const generatorPids = ctx.pool.pids.length > 0 ? ctx.pool.pids : [process.pid]
    const { brokerCpuS, redisCpuS, genCpuS } = idle.cpu
    ctx.phase('idle: 100 s')
    await ctx.startMeasuring()
    await sleep(ctx.smoke ? 1000 : IDLE_WINDOW_MS)
    const quiet = await ctx.stopMeasuring()
    const usPerConnSec = (cpuS: number): number => (cpuS / quiet.windowS / consumers) * 1e6
    return {
      ...idleMetrics(idle, consumers),
      redisPerConsumerBytes: Math.round((redisAfter.bytes - redisBefore.bytes) / consumers),
      redisKeysPerConsumer: Math.round(((redisAfter.keys - redisBefore.keys) / consumers) * 100) / 100,
      brokerUsPerConnect: Math.round((brokerCpuS / consumers) * 1e6),
      redisUsPerConnect: Math.round((redisCpuS / consumers) * 1e6),
      brokerSharePct: Math.round((100 * brokerCpuS) / (brokerCpuS + redisCpuS + genCpuS)),
      idleBrokerUs: usPerConnSec(quiet.brokerCpuS),
      idleRedisUs: usPerConnSec(quiet.redisCpuS),
      maxFilesWorker: Math.max(...ctx.target.pids.map(openFiles)),
      maxFilesGenerator: Math.max(...generatorPids.map(openFiles)),
    }
  },
  checks(medians) {
    const snapper = medians.snapper
    if (!snapper) return []
    const limit = openFilesLimit()
    return [
      {
        label: `connections-100k: every worker and generator under ${limit.toLocaleString('en')} open files`,
        ok: snapper.maxFilesWorker! < limit && snapper.maxFilesGenerator! < limit,
        detail: `busiest worker ${snapper.maxFilesWorker}, busiest generator ${snapper.maxFilesGenerator}`,
      },
    ]
  },
}
