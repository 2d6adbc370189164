/**
 * fanout: 500 consumers in one room, 2,000 messages published flat out (as
 * snapper-producer sends when busy: notifications of 50). Measures
 * deliveries per second from the first publish to the last delivery, the
 * time to full delivery, and loss.
 */
import { makeMessage, nowUs } from '../load/message.js'
import { Publisher } from '../load/publisher.js'
import {
  connectUsers,
  DELIVERY_METRICS,
  joinRoom,
  lossOf,
  makeUsers,
  ms,
  peerChecks,
  publishFlatOut,
  type Scenario,
  snapperChecks,
  waitForDeliveries,
  warmUp,
} from '../lib/scenario.js'

const ROOM = 'fanout'

export const fanout: Scenario = {
  name: 'fanout',
  title: 'fan-out: 500 consumers in one room, 2,000 messages flat out',
  targets: ['socketio', 'snapper', 'uws'],
  noise: true,
  headline: 'deliveriesPerSec',
  metrics: DELIVERY_METRICS,
  async run(ctx) {
    const consumers = ctx.smoke ? 20 : 500
    const messages = ctx.smoke ? 100 : 2000
    const users = makeUsers(consumers, [ROOM])
    await connectUsers(ctx, users)
    const publisher = await Publisher.open(ctx.target)
    try {
      await joinRoom(ctx, publisher, ROOM, users)
      await warmUp(ctx, publisher, [ROOM], consumers)
      ctx.phase('publishing')
      await ctx.startMeasuring()
      const startUs = nowUs()
      await publishFlatOut(publisher, messages, i => [ROOM, makeMessage(i + 1, nowUs(), 100)])
      const report = await waitForDeliveries(ctx, consumers * messages)
      const cpu = await ctx.stopMeasuring()
      const elapsedUs = report.lastAt - startUs
      return {
        deliveriesPerSec: Math.round((report.received - report.dups) / (elapsedUs / 1e6)),
        fullDeliveryMs: ms(elapsedUs),
        p99Ms: ms(report.latency.quantile(0.99)),
        ...lossOf(report, consumers * messages),
        ...cpu,
      }
    } finally {
      publisher.close()
    }
  },
  checks: (medians, { smoke }) =>
    snapperChecks('fanout', medians, smoke, snapper =>
      peerChecks('fanout', 'deliveriesPerSec', medians, snapper, { socketio: 3, uws: 0.5 }),
    ),
}
