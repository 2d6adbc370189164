/**
 * unicast: 5,000 consumers, each in its own user room (`user<userId>`, which
 * Snapper joins on connect), and 20,000 messages to users drawn at random
 * (the same seeded draw for every target), flat out in notifications of 50.
 * Every message is its own room's append: nothing to share, nothing to batch
 * in Redis but the pipeline.
 */
import { makeMessage, nowUs } from '../load/message.js'
import { seededRandom } from '../../test/helpers/seeded-random.js'
import { Publisher } from '../load/publisher.js'
import {
  connectUsers,
  DELIVERY_METRICS,
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

export const unicast: Scenario = {
  name: 'unicast',
  title: 'unicast: 5,000 consumers in their own rooms, 20,000 messages to random users',
  targets: ['socketio', 'snapper', 'uws', 'floor', 'scripts'],
  noise: true,
  headline: 'deliveriesPerSec',
  metrics: DELIVERY_METRICS,
  async run(ctx) {
    const consumers = ctx.smoke ? 50 : 5000
    const messages = ctx.smoke ? 500 : 20_000
    const users = makeUsers(consumers)
    await connectUsers(ctx, users)
    const rooms = users.map(user => `user${user.userId}`)
    const publisher = await Publisher.open(ctx.target)
    try {
      await warmUp(ctx, publisher, rooms, consumers)
      const random = seededRandom(42)
      const seqs = new Int32Array(consumers)
      ctx.phase('publishing')
      await ctx.startMeasuring()
      const startUs = nowUs()
      await publishFlatOut(publisher, messages, () => {
        const user = Math.floor(random() * consumers)
        return [rooms[user]!, makeMessage(++seqs[user]!, nowUs(), 100)]
      })
      const report = await waitForDeliveries(ctx, messages)
      const cpu = await ctx.stopMeasuring()
      const elapsedUs = report.lastAt - startUs
      return {
        deliveriesPerSec: Math.round((report.received - report.dups) / (elapsedUs / 1e6)),
        fullDeliveryMs: ms(elapsedUs),
        p99Ms: ms(report.latency.quantile(0.99)),
        ...lossOf(report, messages),
        ...cpu,
      }
    } finally {
      publisher.close()
    }
  },
  checks: (medians, { smoke }) =>
    snapperChecks('unicast', medians, smoke, snapper =>
      peerChecks('unicast', 'deliveriesPerSec', medians, snapper, { socketio: 2, uws: 0.5 }),
    ),
}
