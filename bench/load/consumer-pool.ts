/**
 * The main thread's handle on the consumer threads: consumers are dealt
 * round-robin over `threads` worker_threads, commands go to every thread,
 * and their replies are merged (sums, the latest time, merged histograms).
 * With `processes`, each "thread" is a generator process of its own (the same
 * worker file, forked), so that each holds its own open-files limit.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { Worker } from 'node:worker_threads'
import { Histogram } from '../lib/histogram.js'
import type { ConsumerSpec } from './consumer.js'
import type { AuditReport, ConnectResult, WorkerCommand, WorkerReport } from './consumer-worker.js'

export interface PoolReport extends Omit<
  WorkerReport,
  'latency' | 'loopDelay' | 'perConsumer' | 'closeReasons'
> {
  readonly latency: Histogram
  /** Every generator thread's loop delay together (WorkerReport.loopDelay). */
  readonly loopDelay: Histogram
  /** Per consumer, in the order added (only with detail). */
  readonly received: number
  readonly perConsumer?: { readonly received: number[]; readonly dups: number[]; readonly sids: string[] }
  readonly closeReasons: Record<string, number>
}

export interface PoolConnectResult {
  readonly opened: number
  readonly failed: number
  readonly connectUs: Histogram
  /** From the first handshake started to the last session open, in µs. */
  readonly elapsedUs: number
  readonly failures: readonly string[]
}

export interface PoolAudit extends Omit<AuditReport, 'reconnectUs'> {
  readonly reconnectUs: Histogram
}

/** Sources for consumers when one address runs out of ephemeral ports: 127.0.0.2 … */
export function loopbackAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`)
}

/** What the pool needs of a worker thread or a generator process. */
type Generator = Pick<Worker, 'postMessage'> & { readonly pid?: number; stop(): Promise<unknown> }

export class ConsumerPool {
  readonly #threads: Generator[]
  readonly #waiting = new Map<number, (reply: unknown) => void>()
  /** Which thread holds consumer i, and where among that thread's consumers. */
  readonly #placement: { thread: number; index: number }[] = []
  #seq = 0

  constructor(threads: number, options: { processes?: boolean } = {}) {
    const onReply = (message: { seq: number; reply: unknown }): void => {
      this.#waiting.get(message.seq)?.(message.reply)
      this.#waiting.delete(message.seq)
    }
    const file = new URL('./consumer-worker.js', import.meta.url)
    this.#threads = Array.from({ length: threads }, () =>
      options.processes ? generatorProcess(file, onReply) : workerThread(file, onReply),
    )
  }

  /** The generator processes (none with threads: the consumers run in this process). */
  get pids(): number[] {
    return this.#threads.flatMap(thread => (thread.pid === undefined ? [] : [thread.pid]))
  }

  get size(): number {
    return this.#placement.length
  }

  #send<T>(thread: number, command: WorkerCommand): Promise<T> {
    const seq = ++this.#seq
    return new Promise<T>(resolve => {
      this.#waiting.set(seq, resolve as (reply: unknown) => void)
      this.#threads[thread]!.postMessage({ seq, command })
    })
  }

  #all<T>(command: (thread: number) => WorkerCommand): Promise<T[]> {
    return Promise.all(this.#threads.map((_, thread) => this.#send<T>(thread, command(thread))))
  }

  /** Adds consumers (not connected yet), dealt round-robin over the threads. */
  async add(specs: readonly ConsumerSpec[]): Promise<void> {
    const perThread: ConsumerSpec[][] = this.#threads.map(() => [])
    const counts = await this.#all<number>(() => ({ op: 'report', detail: false })).then(reports =>
      reports.map(report => (report as unknown as WorkerReport).consumers),
    )
    for (const spec of specs) {
      const thread = this.#placement.length % this.#threads.length
      this.#placement.push({ thread, index: counts[thread]! + perThread[thread]!.length })
      perThread[thread]!.push(spec)
    }
    await this.#all(thread => ({ op: 'add', specs: perThread[thread]! }))
  }

  /** Connects every consumer not open; `concurrency` handshakes in flight in all. */
  async connect(concurrency: number, localAddresses: readonly string[] = []): Promise<PoolConnectResult> {
    const share = Math.max(1, Math.ceil(concurrency / this.#threads.length))
    const results = await this.#all<ConnectResult>(() => ({
      op: 'connect',
      concurrency: share,
      localAddresses,
    }))
    const connectUs = new Histogram()
    for (const result of results) connectUs.add(result.connectUs)
    const started = results.filter(r => r.firstStartUs > 0).map(r => r.firstStartUs)
    const first = started.length > 0 ? Math.min(...started) : 0
    const last = Math.max(...results.map(r => r.lastOpenUs))
    return {
      opened: results.reduce((sum, r) => sum + r.opened, 0),
      failed: results.reduce((sum, r) => sum + r.failed, 0),
      connectUs,
      elapsedUs: last > first ? last - first : 0,
      failures: results.flatMap(r => r.failures).slice(0, 5),
    }
  }

  async report(detail = false): Promise<PoolReport> {
    const reports = await this.#all<WorkerReport>(() => ({ op: 'report', detail }))
    const latency = new Histogram()
    const loopDelay = new Histogram()
    const closeReasons: Record<string, number> = {}
    let perConsumer: PoolReport['perConsumer']
    if (detail) {
      perConsumer = { received: [], dups: [], sids: [] }
      for (const { thread, index } of this.#placement) {
        const own = reports[thread]!.perConsumer!
        perConsumer.received.push(own.received[index]!)
        perConsumer.dups.push(own.dups[index]!)
        perConsumer.sids.push(own.sids[index]!)
      }
    }
    for (const report of reports) {
      if (report.latency) latency.add(report.latency)
      if (report.loopDelay) loopDelay.add(report.loopDelay)
      for (const [reason, n] of Object.entries(report.closeReasons))
        closeReasons[reason] = (closeReasons[reason] ?? 0) + n
    }
    const sum = (
      field: 'consumers' | 'open' | 'received' | 'dups' | 'gaps' | 'warmups' | 'closes' | 'wireBytes',
    ): number => reports.reduce((total, report) => total + report[field], 0)
    return {
      consumers: sum('consumers'),
      open: sum('open'),
      received: sum('received'),
      dups: sum('dups'),
      gaps: sum('gaps'),
      warmups: sum('warmups'),
      closes: sum('closes'),
      wireBytes: sum('wireBytes'),
      lastAt: Math.max(...reports.map(report => report.lastAt)),
      latency,
      loopDelay,
      closeReasons,
      ...(perConsumer && { perConsumer }),
    }
  }

  /** From now on dropped consumers connect again after about delayMs (spec.ports in turn when one fails). */
  async reconnect(delayMs: number): Promise<void> {
    await this.#all(() => ({ op: 'reconnect', delayMs }))
  }

  /** About `count` consumers stop reading (an equal share of every thread's). */
  async stall(count: number): Promise<void> {
    const share = Math.ceil(count / this.#threads.length)
    await this.#all(() => ({ op: 'stall', count: share }))
  }

  async unstall(): Promise<void> {
    await this.#all(() => ({ op: 'unstall' }))
  }

  /** Consumers with a room against the seqs their rooms should have delivered, all threads together. */
  async audit(expected: Readonly<Record<string, readonly number[]>>): Promise<PoolAudit> {
    const reports = await this.#all<AuditReport>(() => ({ op: 'audit', expected }))
    const reconnectUs = new Histogram()
    for (const report of reports) reconnectUs.add(report.reconnectUs)
    const sum = (field: 'consumers' | 'open' | 'received' | 'missing' | 'dups' | 'outOfOrder'): number =>
      reports.reduce((total, report) => total + report[field], 0)
    return {
      consumers: sum('consumers'),
      open: sum('open'),
      received: sum('received'),
      missing: sum('missing'),
      dups: sum('dups'),
      outOfOrder: sum('outOfOrder'),
      reconnectUs,
      missingSamples: reports.flatMap(report => report.missingSamples).slice(0, 3),
    }
  }

  async reset(): Promise<void> {
    await this.#all(() => ({ op: 'reset' }))
  }

  async close(): Promise<void> {
    await this.#all(() => ({ op: 'close' }))
  }

  async terminate(): Promise<void> {
    await Promise.all(this.#threads.map(thread => thread.stop()))
  }
}

function workerThread(file: URL, onReply: (message: { seq: number; reply: unknown }) => void): Generator {
  const worker = new Worker(file)
  worker.on('message', onReply)
  worker.on('error', err => {
    throw err // a bug in the load generator: stop the bench loudly
  })
  return { postMessage: message => worker.postMessage(message), stop: () => worker.terminate() }
}

/** A forked generator; structured-clone IPC, so replies (typed arrays in histograms) arrive as from a thread. */
function generatorProcess(file: URL, onReply: (message: { seq: number; reply: unknown }) => void): Generator {
  const child: ChildProcess = fork(file, [], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  child.on('message', onReply)
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGKILL')
      throw new Error(`generator process ${child.pid} exited with ${code ?? signal}`) // as a thread's error
  })
  return {
    pid: child.pid,
    postMessage: message => child.send(message),
    stop: () =>
      new Promise(resolve => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(undefined)
        child.once('exit', resolve)
        child.kill('SIGKILL')
      }),
  }
}
