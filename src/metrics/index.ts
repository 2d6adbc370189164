/**
 * Prometheus metrics, `snapper_*`. Every value is read from a counter the
 * broker keeps anyway, in a `collect` callback that runs at scrape time: the
 * hot paths are not touched, and a process nobody scrapes pays nothing. The
 * latency histograms too are read from the bucket counts the node keeps
 * (LatencyCounts: a few additions per ack, where a prom-client observe costs
 * 0.2–0.5 µs).
 *
 * Here what every process shares: the registry, a scrape, the process
 * metrics and the primary's own. A node's metrics: node.ts; the admin app's:
 * admin.ts. The metric kinds read so: read.ts. With workers, the primary
 * sums theirs: cluster.ts.
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { countOpenFiles } from '../open-files.js'
import { counterOf } from './read.js'

export { Registry } from 'prom-client'

/** What a scrape returns: Prometheus text and its content type. */
export interface MetricsText {
  readonly contentType: string
  readonly body: string
}

/** The primary's own: workers that died while serving (a rolling restart's planned exits not counted). */
export function registerPrimaryMetrics(registry: Registry, crashes: () => number): void {
  counterOf(
    registry,
    'snapper_primary_worker_crashes_total',
    'Workers that died while serving, each restarted by the primary (not the planned exits of a rolling restart).',
    crashes,
  )
}

/**
 * prom-client's process metrics (event-loop lag, heap, GC, CPU...), optionally
 * prefixed. Its `process_open_fds` lists /proc/self/fd synchronously, about
 * 0.8 µs per open file on the event loop at every scrape (15 ms at 19,000
 * consumer sockets, README "Metrics"); ours asks the kernel for the
 * count instead.
 */
export function registerProcessMetrics(registry: Registry, prefix = ''): void {
  collectDefaultMetrics({ register: registry, prefix })
  const name = `${prefix}process_open_fds`
  if (!registry.getSingleMetric(name)) return // not Linux: prom-client has none either
  registry.removeSingleMetric(name)
  new Gauge({
    name,
    help: 'Number of open file descriptors.',
    registers: [registry],
    async collect() {
      const count = await countOpenFiles().catch(() => undefined)
      if (count !== undefined) this.set(count) // unreadable: the last count stands, as prom-client does
    },
  })
}

/** A scrape of one registry. */
export async function scrape(registry: Registry): Promise<MetricsText> {
  return { contentType: registry.contentType, body: await registry.metrics() }
}
