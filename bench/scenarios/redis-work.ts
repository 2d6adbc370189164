/**
 * redis-work: Redis calls per published message (INFO commandstats, which
 * counts the commands a script runs too) at room sizes 10, 100 and 1,000.
 * For each size: that many consumers in one room, warm, then the stats are
 * reset, 1,000 messages are published at 1,000/s and delivered, and the
 * window closes after one more cursor flush, so everything the deliveries
 * cause (acks persisted as cursors) is counted. The bench's own commands
 * (INFO, CONFIG, FLUSHALL) are left out. Consumers of earlier sizes stay
 * connected and idle: an idle consumer costs Redis nothing.
 */
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

export const redisWork: Scenario = {
  name: 'redis-work',
  title: 'Redis calls per published message at room sizes 10, 100, 1,000',
  targets: ['snapper'],
  noise: false,
  smokeConfig: { cursorFlushMs: 200 },
  headline: 'callsPerMessage1000',
  metrics: [
    { key: 'callsPerMessage10', label: 'calls/msg, 10', unit: '', better: 'lower', digits: 2 },
    { key: 'callsPerMessage100', label: 'calls/msg, 100', unit: '', better: 'lower', digits: 2 },
    { key: 'callsPerMessage1000', label: 'calls/msg, 1,000', unit: '', better: 'lower', digits: 2 },
    { key: 'growth', label: '1,000 ÷ 10', unit: '×', better: 'lower', digits: 2 },
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
        await connectUsers(ctx, users)
        await joinRoom(ctx, publisher, room, users)
        await warmUp(ctx, publisher, [room], size)
        await sleep(flushWaitMs) // the warm-up's cursors are flushed before the count starts
        await ctx.redis.client.config('RESETSTAT')
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
        const calls = await ctx.redis.commandCalls()
        let total = 0
        for (const [command, n] of calls) if (!BENCH_COMMANDS.has(command)) total += n
        result[`callsPerMessage${['10', '100', '1000'][index]}`] = Math.round((total / messages) * 100) / 100
        result.lost! += lossOf(report, size * messages).lost
        breakdown.push(
          `${size}: ` +
            [...calls]
              .filter(([command]) => !BENCH_COMMANDS.has(command))
              .sort((a, b) => b[1] - a[1])
              .map(([command, n]) => `${command} ${n}`)
              .join(', '),
        )
        await ctx.pool.reset()
      }
      result.growth = Math.round((result.callsPerMessage1000! / result.callsPerMessage10!) * 100) / 100
      for (const line of breakdown) ctx.note(`commandstats, room of ${line}`)
      return result
    } finally {
      publisher.close()
    }
  },
  checks: (medians, { smoke }) =>
    snapperChecks('redis-work', medians, smoke, snapper => [
      {
        label: 'Redis calls per message flat in room size (1,000 vs 10 within 10%)',
        ok: snapper.growth! <= 1.1,
        detail: `${snapper.callsPerMessage10} → ${snapper.callsPerMessage100} → ${snapper.callsPerMessage1000} calls/msg`,
      },
    ]),
}
