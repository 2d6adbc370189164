/**
 * catchup: 1,000 consumers connect (and are warm), then all leave; 100
 * messages go to each one's user room while they are away (100,000 distinct
 * messages in 1,000 room logs); then all reconnect at once with the same
 * tokens (the same consumer ids). Measures the time from the first
 * reconnect until every consumer has all its missed messages, once, in order.
 */
import { makeMessage, nowUs } from '../load/message.js'
import { Publisher } from '../load/publisher.js'
import {
  connectUsers,
  lossOf,
  makeUsers,
  ms,
  publishFlatOut,
  type Scenario,
  sleep,
  snapperChecks,
  waitForDeliveries,
  warmUp,
} from '../lib/scenario.js'

export const catchup: Scenario = {
  name: 'catchup',
  title: 'catch-up: 1,000 consumers each miss 100 messages, then all reconnect',
  targets: ['snapper'],
  noise: true,
  headline: 'catchupMs',
  metrics: [
    { key: 'catchupMs', label: 'all caught up', unit: 'ms', better: 'lower' },
    { key: 'reconnectMs', label: 'all reconnected', unit: 'ms', better: 'lower' },
    { key: 'afterReconnectMs', label: 'caught up after last open', unit: 'ms', better: 'lower' },
    { key: 'deliveriesPerSec', label: 'deliveries/s', unit: '/s', better: 'higher' },
    { key: 'lost', label: 'lost', unit: '', better: 'lower' },
    { key: 'dups', label: 'dups', unit: '', better: 'lower' },
  ],
  async run(ctx) {
    const consumers = ctx.smoke ? 20 : 1000
    const missed = ctx.smoke ? 10 : 100
    const users = makeUsers(consumers)
    const rooms = users.map(user => `user${user.userId}`)
    await connectUsers(ctx, users)
    const publisher = await Publisher.open(ctx.target)
    try {
      await warmUp(ctx, publisher, rooms, consumers)
      ctx.phase('disconnecting')
      await ctx.pool.close()
      await sleep(ctx.smoke ? 200 : 1000) // the node persists each leaving consumer's cursors
      ctx.phase(`publishing ${missed} messages to each of ${consumers} rooms`)
      await publishFlatOut(publisher, consumers * missed, i => [
        rooms[i % consumers]!,
        makeMessage(Math.floor(i / consumers) + 1, nowUs(), 100),
      ])
      await publisher.settle()
      await ctx.pool.reset()
      ctx.phase('reconnecting')
      await ctx.startMeasuring()
      const startUs = nowUs()
      const reconnect = await ctx.pool.connect(consumers, ctx.localAddresses)
      if (reconnect.failed > 0)
        throw new Error(`${reconnect.failed} consumers did not reopen: ${reconnect.failures.join('; ')}`)
      const report = await waitForDeliveries(ctx, consumers * missed)
      const cpu = await ctx.stopMeasuring()
      const lastOpenUs = startUs + reconnect.elapsedUs
      return {
        catchupMs: ms(report.lastAt - startUs),
        reconnectMs: ms(reconnect.elapsedUs),
        afterReconnectMs: ms(Math.max(0, report.lastAt - lastOpenUs)),
        deliveriesPerSec: Math.round((report.received - report.dups) / ((report.lastAt - startUs) / 1e6)),
        ...lossOf(report, consumers * missed),
        ...cpu,
      }
    } finally {
      publisher.close()
    }
  },
  checks: (medians, { smoke }) =>
    snapperChecks('catchup', medians, smoke, snapper => [
      {
        label: 'catchup 100,000 missed messages to 1,000 consumers ≤ 1.5 s',
        ok: snapper.catchupMs! <= 1500,
        detail: `${snapper.catchupMs} ms from the first reconnect (${snapper.afterReconnectMs} ms after the last open)`,
      },
    ]),
}
