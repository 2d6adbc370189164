/**
 * The metric kinds of this directory's metrics, each read at scrape time (a
 * `collect` or `get` callback) from a number or bucket counts the broker keeps
 * anyway: the hot paths never touch prom-client.
 */
import { Counter, Gauge, type CollectFunction, type Registry } from 'prom-client'
import type { LatencyCounts } from '../broker/latency.js'

/** A counter whose value is read at scrape time from a monotonic number the broker keeps. */
export function counterOf(registry: Registry, name: string, help: string, read: () => number): void {
  const collect: CollectFunction<Counter> = function () {
    this.reset()
    this.inc(read())
  }
  new Counter({ name, help, registers: [registry], collect })
}

/** A counter with one label, read at scrape time from a `{label value → count}` record. */
export function labelledCounterOf(
  registry: Registry,
  name: string,
  help: string,
  label: string,
  read: () => Readonly<Record<string, number | undefined>>,
): void {
  const collect: CollectFunction<Counter<string>> = function () {
    this.reset()
    for (const [value, count] of Object.entries(read())) if (count) this.inc({ [label]: value }, count)
  }
  new Counter({ name, help, labelNames: [label], registers: [registry], collect })
}

/**
 * A histogram read at scrape time from bucket counts the node keeps
 * (LatencyCounts), one series per set of labels: prom-client's text and
 * cluster aggregation see an ordinary histogram.
 */
export function histogramOf(
  registry: Registry,
  name: string,
  help: string,
  series: () => readonly { readonly labels: Record<string, string>; readonly counts: LatencyCounts }[],
): void {
  const get = () => {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = []
    for (const { labels, counts } of series()) {
      const { bucketsSec, buckets, sum, count } = counts
      let cumulative = 0
      bucketsSec.forEach((le, i) => {
        cumulative += buckets[i]!
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: `${name}_bucket` })
      })
      values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${name}_bucket` })
      values.push({ labels, value: sum, metricName: `${name}_sum` })
      values.push({ labels, value: count, metricName: `${name}_count` })
    }
    return { name, help, type: 'histogram' as const, values, aggregator: 'sum' as const }
  }
  registry.registerMetric({ name, help, type: 'histogram', aggregator: 'sum', get, reset: () => {} } as never)
}

/** A gauge read at scrape time. */
export function gaugeOf(registry: Registry, name: string, help: string, read: () => number): void {
  const collect: CollectFunction<Gauge> = function () {
    this.set(read())
  }
  new Gauge({ name, help, registers: [registry], collect })
}
