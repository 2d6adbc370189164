/**
 * connections: 10,000 idle consumers connect as fast as the server takes
 * them (500 handshakes in flight), from several loopback source addresses.
 * A connect counts from the TCP connect to the session being usable (the
 * Engine.IO open packet; for Socket.IO, its CONNECT answer). Memory is the
 * servers' RSS after a full GC, before and after, divided by the consumers:
 * right after the storm (the garbage of 10,000 handshakes is still resident:
 * V8 hands pages back gradually), and once idle, when RSS has settled (two
 * readings 2 s apart within 1%, or 45 s).
 *
 * 500 in flight stays under every target's listen backlog (512 in uWS, 511 in
 * Node). With more, a server that falls behind for a moment has its accept
 * queue overflow, and each connection dropped there opens only when the
 * kernel resends the SYN-ACK a second later: the run's end, and so its rate,
 * then depends on that timer (1,000 in flight: hundreds to thousands of
 * overflows, and 3,856-5,746 connects/s for the same code; docs/performance.md,
 * finding 11). The overflows are counted.
 */
import type { PoolConnectResult } from '../load/consumer-pool.js'
import {
  makeUsers,
  ms,
  sleep,
  type MetricDef,
  type Metrics,
  peerChecks,
  type RunContext,
  type Scenario,
} from '../lib/scenario.js'
import { listenOverflows } from '../lib/proc.js'

type Memory = Awaited<ReturnType<RunContext['target']['memoryAfterGc']>>

/** What connecting `consumers` idle consumers measured; the caller reads more before they go. */
export interface IdleConnections {
  readonly result: PoolConnectResult
  /** Connections dropped by a full accept queue during the storm (machine-wide). */
  readonly overflows: number
  readonly cpu: Awaited<ReturnType<RunContext['stopMeasuring']>>
  readonly before: Memory
  readonly storm: Memory
  readonly after: Memory
}

/**
 * Connects `consumers` idle consumers in one storm (`inFlight` handshakes at a
 * time, 500 unless given), lets RSS settle, and checks that all are still open.
 * A handshake that fails fails the run, unless `retryFailed`: then it is tried once more, after the storm.
 */
export async function connectIdle(
  ctx: RunContext,
  consumers: number,
  options: { retryFailed?: boolean; inFlight?: number } = {},
): Promise<IdleConnections> {
  const users = makeUsers(consumers)
  const before = await ctx.target.memoryAfterGc()
  await ctx.pool.add(users.map((user, i) => ctx.target.consumerSpec(i, user)))
  ctx.phase(`connecting ${consumers} consumers`)
  await ctx.startMeasuring()
  const overflowsBefore = listenOverflows()
  const result = await ctx.pool.connect(options.inFlight ?? 500, ctx.localAddresses)
  const cpu = await ctx.stopMeasuring()
  const overflows = listenOverflows() - overflowsBefore
  if (result.failed > 0 && options.retryFailed) {
    // Real clients connect again; the storm's rate counts the sessions it opened, and the note says how many did not.
    ctx.note(
      `${result.failed} handshakes closed before their open packet (the first ${result.failures.length}: ${result.failures.join('; ')}), connected again`,
    )
    const retry = await ctx.pool.connect(100, ctx.localAddresses)
    if (retry.failed > 0)
      throw new Error(`${retry.failed} consumers did not open twice: ${retry.failures[0]}`)
  } else if (result.failed > 0)
    throw new Error(`${result.failed} consumers did not open: ${result.failures.join('; ')}`)
  ctx.phase('idle')
  await sleep(ctx.smoke ? 200 : 2000) // whatever a session does after its open packet (Redis replies, timers) settles
  const storm = await ctx.target.memoryAfterGc()
  let after = storm
  for (let waited = 0; !ctx.smoke && waited < 45_000; waited += 2000) {
    await sleep(2000)
    const next = await ctx.target.memoryAfterGc()
    const settled = Math.abs(next.rss - after.rss) <= 0.01 * Math.max(1, after.rss - before.rss)
    after = next
    ctx.phase(`idle, RSS ${Math.round(after.rss / 1048576)} MB`)
    if (settled) break
  }
  const report = await ctx.pool.report()
  if (report.open !== consumers)
    throw new Error(
      `${consumers - report.open} consumers closed while idle: ${JSON.stringify(report.closeReasons)}`,
    )
  return { result, overflows, cpu, before, storm, after }
}

/** The connect rate, and memory per connection (KB, to 0.01), of an idle run. */
export function idleMetrics(
  { result, overflows, cpu, before, storm, after }: IdleConnections,
  consumers: number,
): Metrics {
  const kbPer = (bytes: number): number => Math.round((bytes / consumers / 1024) * 100) / 100
  return {
    connectsPerSec: Math.round(result.opened / (result.elapsedUs / 1e6)),
    failedConnects: result.failed,
    connectP50Ms: ms(result.connectUs.quantile(0.5)),
    connectP99Ms: ms(result.connectUs.quantile(0.99)),
    acceptOverflows: overflows,
    rssPerConnKb: kbPer(after.rss - before.rss),
    rssPerConnStormKb: kbPer(storm.rss - before.rss),
    heapPerConnKb: kbPer(after.heapUsed - before.heapUsed),
    rssMb: Math.round(after.rss / 1024 / 1024),
    ...cpu,
  }
}

/** The columns of idleMetrics; `rssLabel` names the total RSS. */
export function idleColumns(rssLabel: string): MetricDef[] {
  return [
    { key: 'connectsPerSec', label: 'connects/s', unit: '/s', better: 'higher' },
    { key: 'connectP50Ms', label: 'connect p50', unit: 'ms', better: 'lower', digits: 1 },
    { key: 'connectP99Ms', label: 'connect p99', unit: 'ms', better: 'lower', digits: 1 },
    { key: 'acceptOverflows', label: 'accept-queue overflows', unit: '', better: 'none', digits: 0 },
    { key: 'rssPerConnKb', label: 'RSS/conn idle', unit: 'KB', better: 'lower', digits: 2 },
    { key: 'rssPerConnStormKb', label: 'RSS/conn after storm', unit: 'KB', better: 'lower', digits: 2 },
    { key: 'heapPerConnKb', label: 'JS heap/conn', unit: 'KB', better: 'lower', digits: 2 },
    { key: 'rssMb', label: rssLabel, unit: 'MB', better: 'lower', digits: 0 },
  ]
}

export const connections: Scenario = {
  name: 'connections',
  title: 'connections: 10,000 idle consumers',
  targets: ['socketio', 'snapper', 'uws', 'floor', 'scripts'],
  noise: true,
  headline: 'connectsPerSec',
  metrics: idleColumns('RSS at 10k'),
  async run(ctx) {
    const consumers = ctx.smoke ? 100 : 10_000
    return idleMetrics(await connectIdle(ctx, consumers), consumers)
  },
  checks(medians, { smoke }) {
    const snapper = medians.snapper
    if (!snapper || smoke) return []
    return [
      {
        label: 'connections ≤ 8 KB RSS per idle connection',
        ok: snapper.rssPerConnKb! <= 8,
        detail: `${snapper.rssPerConnKb} KB`,
      },
      ...peerChecks('connections', 'connectsPerSec', medians, snapper, { socketio: 1.5, uws: 0.6 }),
    ]
  },
}
