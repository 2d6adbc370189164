/**
 * The dashboard's charts: one point per second for the last 15 minutes,
 * kept in the admin process (bounded: a fixed ring), sampled from what the
 * nodes write anyway — the cluster's totals and each node's report with its
 * delivery latency counts (Stats.figures). Nothing new in Redis: one read
 * of those two hashes per second, whether anyone watches or not, so the
 * history is there when someone opens the dashboard.
 *
 *   every intervalMs: read ─▶ recent raw samples (last QUANTILE_WINDOW)
 *                              │ rates over RATE_WINDOW, quantiles over QUANTILE_WINDOW
 *                              ▼
 *                         points (ring of windowSec / intervalMs) ─▶ GET /dashboard/series?since=
 */
import { quantileSec } from '../broker/latency.js'
import { oneAtATime } from './one-at-a-time.js'
import type { ClusterFigures } from '../broker/stats.js'

/** What one sample reads from Redis (Stats.figures). */
export type ClusterSample = ClusterFigures

/** One point of the charts. Rates per second; latency quantiles in ms, null without deliveries. */
export interface SeriesPoint {
  /** When it was sampled, ms since the epoch. */
  readonly t: number
  readonly published: number
  readonly delivered: number
  readonly online: number
  readonly p50: number | null
  readonly p99: number | null
}

interface RawSample {
  readonly t: number
  readonly published: number
  readonly delivered: number
  /** Latency bucket counts that arrived since the previous sample, all nodes together. */
  readonly latency: readonly number[]
}

/** Rates are taken over this many intervals: nodes flush their counters once a second, not in step with us. */
const RATE_WINDOW = 3
/** Quantiles are taken over the deliveries of this many intervals. */
const QUANTILE_WINDOW = 10

export class LiveSeries {
  readonly intervalMs: number
  readonly #read: () => Promise<ClusterSample>
  readonly #onError: (err: unknown) => void
  readonly #capacity: number
  readonly #points: SeriesPoint[] = []
  readonly #recent: RawSample[] = []
  /** Each node's cumulative latency counts at the last sample; undefined before the first sample. */
  #lastLatency: Map<string, readonly number[]> | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(
    read: () => Promise<ClusterSample>,
    options: {
      readonly intervalMs: number
      readonly windowSec: number
      /** A failed read (Redis down): the point is skipped, the chart shows the gap. */
      readonly onError: (err: unknown) => void
    },
  ) {
    this.#read = read
    this.intervalMs = options.intervalMs
    this.#onError = options.onError
    this.#capacity = Math.ceil((options.windowSec * 1000) / options.intervalMs)
  }

  start(): void {
    this.#timer = setInterval(() => void this.sample(), this.intervalMs)
    this.#timer.unref()
    void this.sample()
  }

  /** Stops sampling; a read in flight ends on its own (it only adds a point). */
  stop(): void {
    clearInterval(this.#timer)
  }

  /** The points sampled after `t` (all of them for 0), oldest first. */
  since(t: number): SeriesPoint[] {
    let first = this.#points.length
    while (first > 0 && this.#points[first - 1]!.t > t) first--
    return this.#points.slice(first)
  }

  /** Takes one sample now (a read still running is not doubled). */
  readonly sample = oneAtATime(() =>
    this.#read().then(
      sample => this.#add(Date.now(), sample),
      err => this.#onError(err),
    ),
  )

  #add(t: number, sample: ClusterSample): void {
    const raw: RawSample = {
      t,
      published: sample.published,
      delivered: sample.delivered,
      latency: this.#latencySinceLast(sample.latency),
    }
    this.#recent.push(raw)
    if (this.#recent.length > QUANTILE_WINDOW + 1) this.#recent.shift()
    const from = this.#recent[Math.max(0, this.#recent.length - 1 - RATE_WINDOW)]!
    const seconds = (t - from.t) / 1000
    const rate = (now: number, then: number): number =>
      seconds > 0 ? Math.max(0, Math.round((now - then) / seconds)) : 0
    const window = sumBuckets(this.#recent.slice(1).map(r => r.latency))
    const quantileMs = (q: number): number | null => {
      const sec = quantileSec(window, q)
      return sec === undefined ? null : Math.round(sec * 10_000) / 10
    }
    this.#points.push({
      t,
      published: rate(raw.published, from.published),
      delivered: rate(raw.delivered, from.delivered),
      online: sample.online,
      p50: quantileMs(0.5),
      p99: quantileMs(0.99),
    })
    if (this.#points.length > this.#capacity) this.#points.shift()
  }

  /**
   * What each node's counts grew by since the last sample, added up. The first
   * sample is the baseline; a node seen for the first time later started since
   * (all of its counts are new); counts that went down mean the node restarted.
   */
  #latencySinceLast(latency: ReadonlyMap<string, readonly number[]>): number[] {
    const last = this.#lastLatency
    this.#lastLatency = new Map(latency)
    if (last === undefined) return []
    const deltas: number[][] = []
    for (const [node, counts] of latency) {
      const before = last.get(node)
      const restarted = before !== undefined && counts.some((n, i) => n < (before[i] ?? 0))
      deltas.push(
        before === undefined || restarted ? [...counts] : counts.map((n, i) => n - (before[i] ?? 0)),
      )
    }
    return sumBuckets(deltas)
  }
}

function sumBuckets(lists: readonly (readonly number[])[]): number[] {
  const sum: number[] = []
  for (const list of lists) list.forEach((n, i) => (sum[i] = (sum[i] ?? 0) + n))
  return sum
}
