/**
 * /metrics with workers: every worker registers on prom-client's global
 * registry and answers the primary's requests over the cluster IPC channel;
 * the primary sums the answers with `AggregatorRegistry.aggregate`, adds what
 * workers that exited had counted, and appends its own registry, whose names
 * (`snapper_http_*`, `snapper_primary_*`) no worker uses.
 */
import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry, Gauge, register as globalRegistry, type Registry } from 'prom-client'
import type { MetricsText } from './index.js'

/**
 * One metric as `Registry.getMetricsAsJSON()` gives it and `AggregatorRegistry.aggregate`
 * takes it (prom-client's typings say `type` is an enum: it is the text, 'counter').
 */
export interface MetricJson {
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
export type MetricsMessage =
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
    const summed = await sumMetrics(metrics)
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

/**
 * The answers summed by prom-client's per-metric aggregators, counters and
 * histograms rounded to 1e-9. A sum of floats depends on the order of its
 * terms, which changes as workers come and go (the retired sums, a new
 * worker's answer): unrounded, a counter could go from 0.004220000000000001
 * to 0.00422, and Prometheus takes any drop for a reset. Rounding keeps
 * every order between sums that differ by more than the noise.
 */
export async function sumMetrics(answers: readonly (readonly MetricJson[])[]): Promise<Registry> {
  const summed = (await AggregatorRegistry.aggregate(
    answers as MetricJson[][],
  ).getMetricsAsJSON()) as unknown as MetricJson[]
  const rounded = summed.map(metric =>
    isMonotonic(metric)
      ? {
          ...metric,
          values: metric.values.map(sample => ({ ...sample, value: Math.round(sample.value * 1e9) / 1e9 })),
        }
      : metric,
  )
  return AggregatorRegistry.aggregate([rounded]) // one answer: each aggregator gives its values back
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
