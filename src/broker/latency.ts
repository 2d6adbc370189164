import type { Cursor } from './cursor.js'

export type Platform = 'android' | 'ios' | 'web'
export const PLATFORMS: readonly Platform[] = ['android', 'ios', 'web']

/**
 * Upper bounds of the delivery latency buckets, in seconds: from a LAN round
 * trip to a consumer that comes back after a day (a message waits in its room
 * log up to messageTtlSec).
 */
export const DELIVERY_LATENCY_BUCKETS_SEC: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21_600, 86_400,
]

/** Upper bounds of the ack latency buckets, in seconds: a LAN round trip up to a consumer near its ack timeout. */
export const ACK_LATENCY_BUCKETS_SEC: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]

/**
 * Latencies counted per bucket (the last one: above every bound), with their
 * sum in seconds and their count: what a Prometheus histogram exposes, for a
 * few plain additions an observation (a prom-client observe costs 0.2–0.5 µs).
 */
export class LatencyCounts {
  readonly bucketsSec: readonly number[]
  readonly buckets: Float64Array
  sum = 0
  count = 0
  readonly #boundsMs: readonly number[]

  constructor(bucketsSec: readonly number[]) {
    this.bucketsSec = bucketsSec
    this.buckets = new Float64Array(bucketsSec.length + 1)
    this.#boundsMs = bucketsSec.map(sec => sec * 1000)
  }

  /** `n` observations of `latencyMs`. */
  add(latencyMs: number, n = 1): void {
    const bounds = this.#boundsMs
    let i = 0
    while (i < bounds.length && latencyMs > bounds[i]!) i++
    this.buckets[i]! += n
    this.sum += (latencyMs / 1000) * n
    this.count += n
  }
}

/**
 * Time from a message being stored (its log id's ms, Redis' clock) to its
 * acknowledgement (this node's clock), per platform. Plain counters, not a
 * prom-client histogram: an ack records a whole batch, grouped into runs of
 * equal ms (one announcement), so the cost is a loop over the batch, not a
 * labelled observation per message. Metrics and the node report read it.
 */
export class DeliveryLatency {
  readonly #counts = new Map<Platform, LatencyCounts>(
    PLATFORMS.map(platform => [platform, new LatencyCounts(DELIVERY_LATENCY_BUCKETS_SEC)]),
  )

  /** A consumer on `platform` acknowledged these messages at `nowMs`. */
  recordBatch(platform: Platform, entries: readonly Cursor[], nowMs: number): void {
    const counts = this.#counts.get(platform)!
    let i = 0
    while (i < entries.length) {
      const ms = entries[i]!.ms
      let end = i + 1
      while (end < entries.length && entries[end]!.ms === ms) end++
      counts.add(Math.max(0, nowMs - ms), end - i) // clocks of Redis and of this node may differ a little
      i = end
    }
  }

  /** The counts of one platform (live: read them, do not keep them). */
  of(platform: Platform): LatencyCounts {
    return this.#counts.get(platform)!
  }

  /** Every platform's bucket counts added up, as a fresh array. */
  total(): number[] {
    const total = new Array<number>(DELIVERY_LATENCY_BUCKETS_SEC.length + 1).fill(0)
    for (const { buckets } of this.#counts.values())
      for (let i = 0; i < total.length; i++) total[i]! += buckets[i]!
    return total
  }
}

/**
 * The q-quantile (0..1) of bucket counts (as `DeliveryLatency.total()`), in
 * seconds, interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile does; undefined when there is no observation.
 */
export function quantileSec(buckets: readonly number[], q: number): number | undefined {
  let count = 0
  for (const n of buckets) count += n
  if (count === 0) return undefined
  const rank = q * count
  let seen = 0
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!
    if (seen + n >= rank && n > 0) {
      const upper = DELIVERY_LATENCY_BUCKETS_SEC[i]
      if (upper === undefined) return DELIVERY_LATENCY_BUCKETS_SEC[i - 1]! // above every bound
      const lower = i === 0 ? 0 : DELIVERY_LATENCY_BUCKETS_SEC[i - 1]!
      return lower + (upper - lower) * ((rank - seen) / n)
    }
    seen += n
  }
  return DELIVERY_LATENCY_BUCKETS_SEC[DELIVERY_LATENCY_BUCKETS_SEC.length - 1]
}
