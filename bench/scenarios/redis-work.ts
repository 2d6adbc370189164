/**
 * redis-work: Redis calls per published message (INFO commandstats, which
 * counts the commands a script runs too) at room sizes 10, 100 and 1,000.
 * For each size: that many consumers in one room, warm, then the stats are
 * reset, 1,000 messages are published at 1,000/s and delivered, and the
 * window closes after one more cursor flush, so everything the deliveries
 * cause (acks persisted as cursors) is counted. The bench's own commands
 * (INFO, CONFIG, FLUSHALL) are left out. Consumers of earlier sizes stay
 * connected and idle: an idle consumer costs Redis nothing.
 *
 * The same kind of window is put around the largest size's handshakes and
 * its `subscribe` joins, and every window also gives the bytes Redis read
 * and wrote (INFO total_net_input/output_bytes): what one handshake, join
 * and message cost Redis (docs/CAPACITY.md builds on them). The handshakes'
 * window also gives Redis's CPU per handshake (a message's window holds idle
 * waits, so its CPU would mislead). Periodic work that falls into a window
 * (cursor flushes, liveness) counts with it.
 */
import type { BenchRedis } from '../lib/redis-server.js'
import { makeMessage, nowUs } from '../load/message.js'
import { Publisher } from '../load/publisher.js'
import {
  connectUsers,
  joinRoom,
  lossOf,
  makeUsers,
  type Scenario,
  sleep,
  snapperChecks,
  waitForDeliveries,
  warmUp,
} from '../lib/scenario.js'

const BENCH_COMMANDS = new Set([
  'info',
  'config|resetstat',
  'config',
  'flushall',
  'ping',
  'client|setinfo',
  'client|setname',
])

interface RedisWork {
  readonly calls: Map<string, number>
  readonly total: number
  /** Read and written, all clients. */
  readonly bytes: number
  readonly cpuS: number
}

/** Resets Redis's counters; the function it gives reads what Redis did since (the bench's own commands left out). */
async function redisWindow(redis: BenchRedis): Promise<() => Promise<RedisWork>> {
  await redis.resetStats()
  const start = await redis.traffic()
  return async () => {
    const [calls, traffic] = await Promise.all([redis.commandCalls(), redis.traffic()])
    for (const command of BENCH_COMMANDS) calls.delete(command)
    let total = 0
    for (const n of calls.values()) total += n
    return { calls, total, bytes: traffic.inputBytes + traffic.outputBytes, cpuS: traffic.cpuS - start.cpuS }
  }
}

/** `command n, …`, most called first. */
const breakdownOf = (calls: Map<string, number>): string =>
  [...calls]
    .sort((a, b) => b[1] - a[1])
    .map(([command, n]) => `${command} ${n}`)
    .join(', ')

/** value ÷ count, rounded to `digits`. */
const per = (value: number, count: number, digits = 2): number =>
  Math.round((value / count) * 10 ** digits) / 10 ** digits

export const redisWork: Scenario = {
  name: 'redis-work',
  title: 'Redis calls per published message at room sizes 10, 100, 1,000; per handshake and join',
  targets: ['snapper'],
  noise: false,
  smokeConfig: { cursorFlushMs: 200 },
  headline: 'callsPerMessage1000',
  metrics: [
    { key: 'callsPerMessage10', label: 'calls/msg, 10', unit: '', better: 'lower', digits: 2 },
    { key: 'callsPerMessage100', label: 'calls/msg, 100', unit: '', better: 'lower', digits: 2 },
    { key: 'callsPerMessage1000', label: 'calls/msg, 1,000', unit: '', better: 'lower', digits: 2 },
    { key: 'growth', label: '1,000 ÷ 10', unit: '×', better: 'lower', digits: 2 },
    { key: 'bytesPerMessage10', label: 'bytes/msg, 10', unit: 'B', better: 'lower' },
    { key: 'bytesPerMessage1000', label: 'bytes/msg, 1,000', unit: 'B', better: 'lower' },
    { key: 'callsPerHandshake', label: 'calls/handshake', unit: '', better: 'lower', digits: 2 },
    { key: 'bytesPerHandshake', label: 'bytes/handshake', unit: 'B', better: 'lower' },
    { key: 'redisUsPerHandshake', label: 'Redis CPU/handshake', unit: 'µs', better: 'lower' },
    { key: 'callsPerJoin', label: 'calls/join', unit: '', better: 'lower', digits: 2 },
    { key: 'bytesPerJoin', label: 'bytes/join', unit: 'B', better: 'lower' },
    { key: 'lost', label: 'lost', unit: '', better: 'lower' },
  ],
  async run(ctx) {
    const sizes = ctx.smoke ? [2, 5, 10] : [10, 100, 1000]
    const messages = ctx.smoke ? 50 : 1000
    const rate = 1000
    const flushWaitMs = ctx.smoke ? 300 : 1500 // past one cursor flush (cursorFlushMs: 1,000; 200 in smoke)
    const publisher = await Publisher.open(ctx.target)
    const result: Record<string, number> = { lost: 0 }
    const breakdown: string[] = []
    try {
      for (const [index, size] of sizes.entries()) {
        const room = `work${size}`
        const users = makeUsers(size, [room])
        const isLargest = index === sizes.length - 1
        const handshakes = await redisWindow(ctx.redis)
        await connectUsers(ctx, users)
        const handshakeWork = await handshakes()
        const joins = await redisWindow(ctx.redis)
        await joinRoom(ctx, publisher, room, users)
        const joinWork = await joins()
        if (isLargest) {
          result.callsPerHandshake = per(handshakeWork.total, size)
          result.bytesPerHandshake = per(handshakeWork.bytes, size, 0)
          result.redisUsPerHandshake = per(handshakeWork.cpuS * 1e6, size, 0)
          result.callsPerJoin = per(joinWork.total, size)
          result.bytesPerJoin = per(joinWork.bytes, size, 0)
          breakdown.push(`${size} handshakes: ${breakdownOf(handshakeWork.calls)}`)
          breakdown.push(`${size} joins: ${breakdownOf(joinWork.calls)}`)
        }
        await warmUp(ctx, publisher, [room], size)
        await sleep(flushWaitMs) // the warm-up's cursors are flushed before the count starts
        const published = await redisWindow(ctx.redis)
        ctx.phase(`room of ${size}: publishing ${messages} at ${rate}/s`)
        const startUs = nowUs()
        // One message per publish, whatever the timing: the append calls per message stay the same,
        // so only what the room's size changes shows.
        for (let sent = 0; sent < messages;) {
          const due = Math.min(messages, Math.floor(((nowUs() - startUs) / 1e6) * rate) + 1)
          while (sent < due) publisher.publish([[room, makeMessage(++sent, nowUs(), 100)]])
          await sleep(1)
        }
        const report = await waitForDeliveries(ctx, size * messages)
        await sleep(flushWaitMs) // one more cursor flush: the last acks are persisted too
        const work = await published()
        const label = ['10', '100', '1000'][index]!
        result[`callsPerMessage${label}`] = per(work.total, messages)
        result[`bytesPerMessage${label}`] = per(work.bytes, messages, 0)
        result.lost! += lossOf(report, size * messages).lost
        breakdown.push(`room of ${size}: ${breakdownOf(work.calls)}`)
        await ctx.pool.reset()
      }
      result.growth = Math.round((result.callsPerMessage1000! / result.callsPerMessage10!) * 100) / 100
      for (const line of breakdown) ctx.note(`commandstats, ${line}`)
      return result
    } finally {
      publisher.close()
    }
  },
  checks: (medians, { smoke }) =>
    snapperChecks('redis-work', medians, smoke, snapper => [
      {
        label: 'Redis calls per message do not grow with room size (1,000 vs 10: at most +10 %)',
        ok: snapper.growth! <= 1.1,
        detail: `${snapper.callsPerMessage10} → ${snapper.callsPerMessage100} → ${snapper.callsPerMessage1000} calls/msg`,
      },
    ]),
}
