/**
 * latency: 200 consumers in one room, 500 messages/s for 10 s (100,000
 * deliveries/s), each message its own notification as soon as it is due.
 * Measures publish → receive-and-ack latency (the consumer acks in the same
 * tick it parses the frame) at p50/p99/p999/max.
 */
import { makeMessage, nowUs } from '../load/message.js'
import { Publisher } from '../load/publisher.js'
import {
  connectUsers,
  joinRoom,
  lossOf,
  makeUsers,
  ms,
  type Scenario,
  sleep,
  snapperChecks,
  waitForDeliveries,
  warmUp,
} from '../lib/scenario.js'

const ROOM = 'latency'

export const latency: Scenario = {
  name: 'latency',
  title: 'latency: 200 consumers in one room, 500 msgs/s for 10 s',
  targets: ['socketio', 'snapper', 'uws'],
  noise: true,
  headline: 'p99Ms',
  metrics: [
    { key: 'p50Ms', label: 'p50', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'p99Ms', label: 'p99', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'p999Ms', label: 'p999', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'maxMs', label: 'max', unit: 'ms', better: 'lower', digits: 1 },
    { key: 'deliveriesPerSec', label: 'deliveries/s', unit: '/s', better: 'higher' },
    // Where a tail waits: the server's own loop (how late it ran a 5 ms timer, the highest of its processes) and
    // its GC pauses over the window; the generator's threads, measured the same way, which every latency includes.
    { key: 'serverDelayP99Ms', label: 'server loop delay p99', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'serverGcMs', label: 'server GC pauses', unit: 'ms', better: 'lower' },
    { key: 'generatorDelayP99Ms', label: 'generator loop delay p99', unit: 'ms', better: 'lower', digits: 2 },
    { key: 'lost', label: 'lost', unit: '', better: 'lower' },
  ],
  async run(ctx) {
    const consumers = ctx.smoke ? 20 : 200
    const rate = ctx.smoke ? 200 : 500
    const seconds = ctx.smoke ? 1 : 10
    const total = rate * seconds
    const users = makeUsers(consumers, [ROOM])
    await connectUsers(ctx, users)
    const publisher = await Publisher.open(ctx.target)
    try {
      await joinRoom(ctx, publisher, ROOM, users)
      await warmUp(ctx, publisher, [ROOM], consumers)
      ctx.phase(`publishing ${rate}/s for ${seconds} s`)
      await ctx.startMeasuring()
      const startUs = nowUs()
      let sent = 0
      while (sent < total) {
        // Every message that is due goes now, each in its own notification (an idle producer does that).
        const due = Math.min(total, Math.floor(((nowUs() - startUs) / 1e6) * rate) + 1)
        while (sent < due) publisher.publish([[ROOM, makeMessage(++sent, nowUs(), 100)]])
        await sleep(1)
      }
      const sendUs = nowUs() - startUs
      const report = await waitForDeliveries(ctx, consumers * total, { idleMs: 3000 })
      const cpu = await ctx.stopMeasuring()
      const q = (p: number): number => ms(report.latency.quantile(p))
      return {
        p50Ms: q(0.5),
        p99Ms: q(0.99),
        p999Ms: q(0.999),
        maxMs: ms(report.latency.max),
        generatorDelayP99Ms: ms(report.loopDelay.quantile(0.99)),
        deliveriesPerSec: Math.round((report.received - report.dups) / (sendUs / 1e6)),
        ...lossOf(report, consumers * total),
        ...cpu,
      }
    } finally {
      publisher.close()
    }
  },
  checks: (medians, { smoke }) =>
    snapperChecks('latency', medians, smoke, snapper => [
      {
        label: 'latency p99 ≤ 25 ms at 100,000 deliveries/s',
        ok: snapper.p99Ms! <= 25 && snapper.deliveriesPerSec! >= 95_000,
        detail: `p99 ${snapper.p99Ms} ms at ${Math.round(snapper.deliveriesPerSec!).toLocaleString('en')}/s`,
      },
    ]),
}
