/**
 * Prometheus metrics, `snapper_*`. Every value is read from a counter the
 * broker keeps anyway, in a `collect` callback that runs at scrape time: the
 * hot paths are not touched, and a process nobody scrapes pays nothing. The
 * latency histograms too are read from the bucket counts the node keeps
 * (LatencyCounts: a few additions per ack, where a prom-client observe costs
 * 0.2–0.5 µs).
 *
 * Cluster mode: every worker registers on prom-client's global registry and
 * answers the primary's requests over the cluster IPC channel; the primary
 * sums the answers with `AggregatorRegistry.aggregate`, adds what workers that
 * exited had counted, and appends its own registry, whose names
 * (`snapper_http_*`, `snapper_primary_*`) no worker uses.
 */
import cluster, { type Worker } from 'node:cluster'
import {
  AggregatorRegistry,
  collectDefaultMetrics,
  Counter,
  Gauge,
  Registry,
  register as globalRegistry,
  type CollectFunction,
} from 'prom-client'
import type { BrokerCore } from './broker/core.js'
import type { EscalationCounters } from './broker/escalation.js'
import { PLATFORMS, type LatencyCounts } from './broker/latency.js'
import type { BrokerNode } from './broker/node.js'

export { Registry } from 'prom-client'

/** What a scrape returns: Prometheus text and its content type. */
export interface MetricsText {
  readonly contentType: string
  readonly body: string
}

/** The parts of a node that metrics read; all optional but the node, so tests can pass what they have. */
export interface NodeSources {
  readonly core: BrokerCore
  readonly node: BrokerNode
  /** Engine.IO sessions of the consumer gateway. */
  readonly sessions?: { readonly size: number }
  /** Gateway counters (handshakes, refused...). */
  readonly gateway?: { readonly handshakes: number; readonly refused: number; readonly invalid: number }
  /** The gateway's Engine.IO server. */
  readonly engine?: { readonly handshakesRateLimited: number }
  /** The node's escalator, when a webhook is configured. */
  readonly escalations?: EscalationCounters
  /** The node's Redis watchdog: whether Redis answers its PINGs. */
  readonly redisWatchdog?: { readonly isUp: boolean }
  /** Producer listener snapshot. */
  readonly producer?: {
    readonly stats: {
      readonly connections: number
      readonly unauthenticated: number
      readonly errors: Readonly<Record<string, number | undefined>>
    }
  }
}

/** A counter whose value is read at scrape time from a monotonic number the broker keeps. */
function counterOf(registry: Registry, name: string, help: string, read: () => number): void {
  const collect: CollectFunction<Counter> = function () {
    this.reset()
    this.inc(read())
  }
  new Counter({ name, help, registers: [registry], collect })
}

/** A counter with one label, read at scrape time from a `{label value → count}` record. */
function labelledCounterOf(
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
function histogramOf(
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

function gaugeOf(registry: Registry, name: string, help: string, read: () => number): void {
  const collect: CollectFunction<Gauge> = function () {
    this.set(read())
  }
  new Gauge({ name, help, registers: [registry], collect })
}

/**
 * The metrics of one broker node (consumer gateway, producer listener, Redis
 * core), on `registry`. Register a node once per registry: names are
 * unique within one.
 */
export function registerNodeMetrics(registry: Registry, sources: NodeSources): void {
  const { core, node, sessions, gateway, engine, producer, escalations, redisWatchdog } = sources
  const { totals } = core.stats
  const counters = node.counters

  gaugeOf(
    registry,
    'snapper_nodes',
    'Broker nodes in this scrape: 1 per process, summed over a cluster.',
    () => 1,
  )
  gaugeOf(
    registry,
    'snapper_consumer_sessions',
    'Engine.IO sessions open on the consumer gateway.',
    () => sessions?.size ?? 0,
  )
  gaugeOf(
    registry,
    'snapper_consumers_online',
    'Consumers whose live session this node holds.',
    () => node.online,
  )
  gaugeOf(
    registry,
    'snapper_rooms_followed',
    'Rooms this node follows for its consumers.',
    () => node.roomCount,
  )
  gaugeOf(
    registry,
    'snapper_backlog_messages',
    'Messages waiting in outboxes, not yet sent to their consumer.',
    () => node.backlog(),
  )
  gaugeOf(
    registry,
    'snapper_publish_pending_bytes',
    'Bytes of published messages handed to Redis and not stored yet (bounded by publishMaxPendingBytes).',
    () => core.producerApi.backlog.bytes,
  )
  gaugeOf(
    registry,
    'snapper_redis_offline_commands',
    "Redis commands held in the client's offline queue while Redis is down.",
    () => core.redis.offlineCommands(),
  )
  // Only with a watchdog: without one, neither 1 nor 0 would be true.
  if (redisWatchdog)
    gaugeOf(
      registry,
      'snapper_redis_up',
      "1 while Redis answers this node's watchdog PING (every master of a cluster), 0 while not; summed over a cluster's workers, the workers that reach Redis.",
      () => (redisWatchdog.isUp ? 1 : 0),
    )
  gaugeOf(
    registry,
    'snapper_recent_bytes',
    'Bytes of recent room messages held in memory for consumers that fall behind or rejoin.',
    () => node.recentBytes,
  )
  gaugeOf(
    registry,
    'snapper_producer_connections',
    'Producer TCP connections open.',
    () => producer?.stats.connections ?? 0,
  )
  gaugeOf(
    registry,
    'snapper_producer_unauthenticated_connections',
    'Producer TCP connections that have not authenticated yet.',
    () => producer?.stats.unauthenticated ?? 0,
  )

  counterOf(
    registry,
    'snapper_messages_published_total',
    'Messages from producer TCP connections stored in Redis.',
    () => totals.producerMessages,
  )
  counterOf(
    registry,
    'snapper_append_calls_total',
    'Redis script calls that stored published messages: one per hash slot per event-loop turn.',
    () => core.log.appendCalls,
  )
  counterOf(
    registry,
    'snapper_messages_delivered_total',
    'Messages delivered to consumers and acknowledged by them.',
    () => totals.consumerMessages,
  )
  counterOf(
    registry,
    'snapper_consumer_connects_total',
    'Consumer sessions opened on this node.',
    () => totals.consumers,
  )
  counterOf(
    registry,
    'snapper_batches_sent_total',
    'Delivery batches sent to consumers (resends included).',
    () => counters.batchesSent,
  )
  counterOf(
    registry,
    'snapper_log_reads_total',
    'Room log reads from Redis (catch-up, gaps, reconnects).',
    () => counters.logReads,
  )
  counterOf(
    registry,
    'snapper_log_read_errors_total',
    'Room log reads that failed and were retried.',
    () => counters.logReadErrors,
  )
  counterOf(
    registry,
    'snapper_announcements_total',
    'Room announcements received from Redis pub/sub.',
    () => node.announcements.received,
  )
  counterOf(
    registry,
    'snapper_announcements_dropped_total',
    'Room announcements that could not be decoded: dropped, their messages read from the log at the next one.',
    () => node.announcements.dropped,
  )
  counterOf(registry, 'snapper_cursor_commits_total', 'Cursor writes to Redis.', () => counters.cursorCommits)
  counterOf(
    registry,
    'snapper_gaps_total',
    'Holes found in what consumers should get: messages no longer in the room log (each told with a gap notice).',
    () => counters.gaps,
  )
  counterOf(
    registry,
    'snapper_gap_messages_total',
    'Messages consumers missed in those holes, where the count is known.',
    () => counters.gapMessages,
  )
  counterOf(
    registry,
    'snapper_redis_errors_total',
    "Redis commands of the node's own work (cursors, hand-overs, periodic tasks) that failed, each logged and retried or healed later. Not publishes (snapper_producer_errors_total), not outages: commands wait through those (snapper_redis_up).",
    () => counters.redisErrors,
  )
  counterOf(
    registry,
    'snapper_ack_timeouts_total',
    'Consumer sessions closed because a batch was not acknowledged in time.',
    () => counters.ackTimeouts,
  )
  counterOf(
    registry,
    'snapper_kicks_total',
    'Consumer sessions handed over to another node.',
    () => counters.kicks,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_total',
    'Consumer handshakes received.',
    () => gateway?.handshakes ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_refused_total',
    'Consumer handshakes refused: a bad token (403), an unknown codec (400), or the node cannot take the consumer now (503: Redis not ready). Not the 429s, counted apart.',
    () => gateway?.refused ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_rate_limited_total',
    'Consumer handshakes refused with 429: their address was over maxHandshakesPerAddressPerSec.',
    () => engine?.handshakesRateLimited ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_invalid_messages_total',
    'Consumer messages that were not acks or requests.',
    () => gateway?.invalid ?? 0,
  )
  counterOf(
    registry,
    'snapper_tracked_messages_total',
    'Tracked messages (producer method track) stored in Redis.',
    () => core.tracking.counters.tracked,
  )
  counterOf(
    registry,
    'snapper_receipts_total',
    'Acknowledgements of tracked messages recorded as receipts.',
    () => core.tracking.counters.receipts,
  )
  counterOf(
    registry,
    'snapper_receipts_unlisted_total',
    'Acknowledgements of tracked messages past their trackMaxReceipts: counted in the receipt (moreAcks), not recorded.',
    () => core.tracking.counters.unlistedAcks,
  )
  labelledCounterOf(
    registry,
    'snapper_escalations_total',
    'Escalations of tracked messages, by result: sent (the webhook answered 2xx), failed (an attempt, retried later), abandoned (failed for escalationRetrySec), acknowledged (in time: no webhook).',
    'result',
    () => {
      if (!escalations) return {}
      const { sent, failed, abandoned, acknowledged } = escalations
      return { sent, failed, abandoned, acknowledged }
    },
  )
  histogramOf(
    registry,
    'snapper_delivery_latency_seconds',
    'Time from a message being stored to its acknowledgement by a consumer, by platform.',
    () => PLATFORMS.map(platform => ({ labels: { platform }, counts: node.deliveryLatency.of(platform) })),
  )
  histogramOf(
    registry,
    'snapper_ack_latency_seconds',
    'Time from sending a delivery batch to its acknowledgement.',
    () => [{ labels: {}, counts: node.ackLatency }],
  )
  labelledCounterOf(
    registry,
    'snapper_producer_errors_total',
    'Errors answered to producers, by code.',
    'code',
    () => producer?.stats.errors ?? {},
  )
}

/** Counters of the admin app, kept by it and read by its metrics. */
export interface AdminCounters {
  /** Responses by HTTP status code. */
  readonly responses: Record<string, number>
  /** Error answers by ERRORS code. */
  readonly errors: Record<string, number>
}

export const createAdminCounters = (): AdminCounters => ({ responses: {}, errors: {} })

/**
 * The admin app's metrics. `core` is the admin app's own broker core: its
 * totals count only what the HTTP API published.
 */
export function registerAdminMetrics(
  registry: Registry,
  sources: { core: BrokerCore; counters: AdminCounters },
): void {
  const { core, counters } = sources
  counterOf(
    registry,
    'snapper_http_published_messages_total',
    'Messages from the HTTP publish API stored in Redis.',
    () => core.stats.totals.producerMessages,
  )
  counterOf(
    registry,
    'snapper_http_tracked_messages_total',
    'Tracked messages from the HTTP API (POST /v1/track) stored in Redis.',
    () => core.tracking.counters.tracked,
  )
  labelledCounterOf(
    registry,
    'snapper_http_responses_total',
    'Admin HTTP responses, by status code.',
    'status',
    () => counters.responses,
  )
  labelledCounterOf(
    registry,
    'snapper_http_errors_total',
    'Admin HTTP error answers, by error code.',
    'code',
    () => counters.errors,
  )
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

/** prom-client's process metrics (event-loop lag, heap, GC, CPU...), optionally prefixed. */
export function registerProcessMetrics(registry: Registry, prefix = ''): void {
  collectDefaultMetrics({ register: registry, prefix })
}

/** A scrape of one registry. */
export async function scrape(registry: Registry): Promise<MetricsText> {
  return { contentType: registry.contentType, body: await registry.metrics() }
}

/**
 * One metric as `Registry.getMetricsAsJSON()` gives it and `AggregatorRegistry.aggregate`
 * takes it (prom-client's typings say `type` is an enum: it is the text, 'counter').
 */
interface MetricJson {
  readonly name: string
  readonly help: string
  readonly type: string
  readonly aggregator: string
  readonly values: readonly SampleJson[]
}

interface SampleJson {
  readonly value: number
  readonly labels: Readonly<Record<string, string | number>>
  /** A histogram's `_bucket`, `_sum` or `_count`. */
  readonly metricName?: string
}

/**
 * What the primary and a worker say about metrics, over the cluster IPC
 * channel (the worker's other messages are in cli/worker.ts):
 *
 *   worker  → primary  answering         once it answers requests
 *   primary → worker   request {id}
 *   worker  → primary  answer {id}       its metrics, or `error`: a collect threw
 */
type MetricsMessage =
  | { readonly type: 'metrics:answering' }
  | { readonly type: 'metrics:request'; readonly id: number }
  | {
      readonly type: 'metrics:answer'
      readonly id: number
      readonly metrics?: MetricJson[]
      readonly error?: string
    }

const isMetricsMessage = (message: unknown): message is MetricsMessage =>
  typeof message === 'object' &&
  message !== null &&
  String((message as { type?: unknown }).type).startsWith('metrics:')

/**
 * In a worker (once): metrics go on the global registry, whose metrics this
 * worker sends the primary each time it asks.
 */
export function workerRegistry(): Registry {
  process.on('message', (message: unknown) => {
    if (isMetricsMessage(message) && message.type === 'metrics:request') void answerPrimary(message.id)
  })
  tellPrimary({ type: 'metrics:answering' })
  return globalRegistry
}

async function answerPrimary(id: number): Promise<void> {
  let answer: MetricsMessage
  try {
    const metrics = (await globalRegistry.getMetricsAsJSON()) as unknown as MetricJson[]
    answer = { type: 'metrics:answer', id, metrics }
  } catch (err) {
    answer = { type: 'metrics:answer', id, error: (err as Error).message }
  }
  tellPrimary(answer)
}

function tellPrimary(message: MetricsMessage): void {
  // A callback, or a closed channel (this worker exiting) is an 'error' event nobody handles. Nothing
  // to do then: the primary stops waiting for this worker and uses its previous answer.
  process.send?.(message, undefined, undefined, () => {})
}

/** How long the primary waits for one worker's metrics, in ms: they take a few ms, so a worker this late is stuck or exiting. */
const WORKER_ANSWER_TIMEOUT_MS = 1000

/**
 * In the primary: the workers' metrics summed by prom-client's per-metric
 * aggregators (counters, histograms and most gauges add up; some process
 * metrics take the average, min, max or first), plus the counters and
 * histograms of workers that exited, plus `snapper_metrics_workers_missing`,
 * followed by the primary's own registry. A worker that does not answer
 * within `answerTimeoutMs` counts as missing and its previous answer stands in.
 */
export function clusterScraper(
  own: Registry,
  answerTimeoutMs = WORKER_ANSWER_TIMEOUT_MS,
): () => Promise<MetricsText> {
  const workers = new WorkerMetrics(answerTimeoutMs)
  return async () => {
    const [{ metrics, missing }, primary] = await Promise.all([workers.collect(), own.metrics()])
    const summed = AggregatorRegistry.aggregate(metrics)
    new Gauge({
      name: 'snapper_metrics_workers_missing',
      help: 'Workers that did not answer this scrape in time (stuck or exiting): their previous answer stands in, if any.',
      registers: [summed],
    }).set(missing)
    const body = await summed.metrics()
    return {
      contentType: summed.contentType,
      body: body.endsWith('\n') ? body + primary : `${body}\n${primary}`,
    }
  }
}

/** A worker's latest answer, and the request it answered. */
interface Answer {
  readonly id: number
  readonly metrics: readonly MetricJson[]
}

/** A request waiting for its worker's answer. */
interface Waiting {
  readonly worker: Worker
  /** true: answered; false: not in time, or never will be; an Error: its collect failed. */
  settle(result: boolean | Error): void
}

/**
 * The primary's view of its workers' metrics. Every collect asks each worker
 * that answers, each with its own timeout, and keeps its latest answer. When
 * a worker exits, the counters and histograms of its latest answer move to
 * `#retired`, which every later collect adds: the sums never go back when a
 * worker restarts (Prometheus would take the drop for a counter reset and
 * count the whole new value as an increase). What a worker counted after its
 * latest answer dies with it: the sums may undercount, never go back.
 */
class WorkerMetrics {
  readonly #timeoutMs: number
  /** The workers that answer, each with its latest answer (undefined before the first). */
  readonly #workers = new Map<Worker, Answer | undefined>()
  readonly #waiting = new Map<number, Waiting>()
  readonly #retired = new MonotonicSums()
  #nextId = 0

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs
    cluster.on('message', (worker, message: unknown) => {
      if (isMetricsMessage(message)) this.#receive(worker, message)
    })
    cluster.on('exit', worker => this.#retire(worker))
  }

  /**
   * The metrics to sum: each worker's latest answer and the retired sums; and
   * how many workers did not answer this time. Rejects if a worker's collect
   * failed (a bug, as in a single process).
   */
  async collect(): Promise<{ metrics: (readonly MetricJson[])[]; missing: number }> {
    const answered = await Promise.all([...this.#workers.keys()].map(worker => this.#ask(worker)))
    const latest = [...this.#workers.values()].flatMap(answer => (answer ? [answer.metrics] : []))
    return { metrics: [...latest, this.#retired.toJson()], missing: answered.filter(isIn => !isIn).length }
  }

  /** Resolves with whether `worker` answered in time. */
  #ask(worker: Worker): Promise<boolean> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const settle = (result: boolean | Error): void => {
        clearTimeout(timer)
        this.#waiting.delete(id)
        if (result instanceof Error) reject(result)
        else resolve(result)
      }
      const timer = setTimeout(() => settle(false), this.#timeoutMs)
      this.#waiting.set(id, { worker, settle })
      const request: MetricsMessage = { type: 'metrics:request', id }
      worker.send(request, err => err && settle(false)) // its channel closed: it is exiting
    })
  }

  #receive(worker: Worker, message: MetricsMessage): void {
    if (message.type === 'metrics:answering' && !this.#workers.has(worker))
      this.#workers.set(worker, undefined)
    if (message.type !== 'metrics:answer') return
    const waiting = this.#waiting.get(message.id)
    if (message.metrics === undefined) {
      waiting?.settle(new Error(`worker ${worker.id} failed to collect its metrics: ${message.error}`))
      return
    }
    // A late answer is kept too, unless a newer one came first or the worker is gone (its answer retired).
    const latest = this.#workers.get(worker)
    if (this.#workers.has(worker) && !(latest && latest.id > message.id))
      this.#workers.set(worker, { id: message.id, metrics: message.metrics })
    waiting?.settle(true)
  }

  #retire(worker: Worker): void {
    const latest = this.#workers.get(worker)
    this.#workers.delete(worker)
    if (latest) this.#retired.add(latest.metrics)
    for (const waiting of this.#waiting.values()) if (waiting.worker === worker) waiting.settle(false)
  }
}

/**
 * Counters and histograms that prom-client sums, added up sample by sample
 * (same metric, sample name and labels). Gauges are left out: they describe
 * live workers only.
 */
class MonotonicSums {
  readonly #metrics = new Map<string, { metric: MetricJson; samples: Map<string, SampleJson> }>()

  add(metrics: readonly MetricJson[]): void {
    for (const metric of metrics) {
      if (!isMonotonic(metric)) continue
      let sums = this.#metrics.get(metric.name)
      if (!sums) this.#metrics.set(metric.name, (sums = { metric, samples: new Map() }))
      for (const sample of metric.values) {
        const key = sampleKey(sample)
        const sum = sums.samples.get(key)?.value ?? 0
        sums.samples.set(key, { ...sample, value: sum + sample.value })
      }
    }
  }

  toJson(): MetricJson[] {
    return [...this.#metrics.values()].map(({ metric, samples }) => ({
      ...metric,
      values: [...samples.values()],
    }))
  }
}

const isMonotonic = (metric: MetricJson): boolean =>
  (metric.type === 'counter' || metric.type === 'histogram') && metric.aggregator === 'sum'

/** Labels sorted: two workers may list them in different orders. */
const sampleKey = ({ metricName = '', labels }: SampleJson): string =>
  JSON.stringify([metricName, Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))])
