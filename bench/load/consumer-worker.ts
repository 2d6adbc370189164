/**
 * A worker thread (or a forked generator process: the same file, commands
 * over its IPC channel) running thousands of lean consumers. The main thread sends
 * commands (see `WorkerCommand`) and gets one reply per command, tagged with
 * the command's `seq`. Counters live in the consumers; a report sums them.
 */
import { parentPort } from 'node:worker_threads'
import { Histogram, type HistogramData } from '../lib/histogram.js'
import { recordLoopDelay } from '../lib/loop-delay.js'
import { LeanConsumer, type ConsumerHost, type ConsumerSpec } from './consumer.js'
import { nowUs } from './message.js'

export type WorkerCommand =
  | { readonly op: 'add'; readonly specs: readonly ConsumerSpec[] }
  /** Connects every consumer that is not open, at most `concurrency` handshakes at a time. */
  | { readonly op: 'connect'; readonly concurrency: number; readonly localAddresses: readonly string[] }
  | { readonly op: 'report'; readonly detail: boolean }
  /** Zeroes counters and latencies (seqs and batch ids stay: they are the consumers' memory). */
  | { readonly op: 'reset' }
  /** Closes every open consumer (client close) and waits until all are closed. */
  | { readonly op: 'close' }
  /** From now on a consumer whose session drops, or whose connect fails, connects again after about delayMs. */
  | { readonly op: 'reconnect'; readonly delayMs: number }
  /** The first `count` consumers of this thread stop reading (until `unstall`). */
  | { readonly op: 'stall'; readonly count: number }
  | { readonly op: 'unstall' }
  /** Checks consumers with a room against the seqs each room should have delivered. */
  | { readonly op: 'audit'; readonly expected: Readonly<Record<string, readonly number[]>> }

export interface ConnectResult {
  readonly opened: number
  readonly failed: number
  readonly connectUs: HistogramData
  readonly firstStartUs: number
  readonly lastOpenUs: number
  readonly failures: readonly string[]
}

/** What consumers with a room saw, against what their rooms should have delivered. */
export interface AuditReport {
  readonly consumers: number
  readonly open: number
  readonly received: number
  /** Expected messages that never arrived, all consumers together. */
  readonly missing: number
  readonly dups: number
  readonly outOfOrder: number
  /** From a session's drop to the next open, each reconnect. */
  readonly reconnectUs: HistogramData
  /** A few consumers that miss messages, described (sid, open, received, missing, closes, last close). */
  readonly missingSamples: readonly string[]
}

export interface WorkerReport {
  readonly consumers: number
  readonly open: number
  readonly received: number
  readonly dups: number
  readonly gaps: number
  readonly warmups: number
  readonly closes: number
  readonly lastAt: number
  /** Bytes the consumers received on the wire since the last reset. */
  readonly wireBytes: number
  readonly latency?: HistogramData
  /** How late this thread ran a timer due every LOOP_TICK_MS: what a frame arriving meanwhile waited too. */
  readonly loopDelay?: HistogramData
  /** Per consumer, in the order added: messages received and duplicates. */
  readonly perConsumer?: { readonly received: number[]; readonly dups: number[]; readonly sids: string[] }
  readonly closeReasons: Readonly<Record<string, number>>
}

const consumers: LeanConsumer[] = []
const latency = new Histogram()
const loopDelay = new Histogram()
const closeReasons = new Map<string, number>()
const reconnectUs = new Histogram()
let hasV3 = false
/** Set by the `reconnect` command: how long a dropped consumer waits before it connects again. */
let reconnectDelayMs: number | undefined

/** The connect in progress: consumers waiting to start, and how to report. */
let connecting:
  | {
      queue: LeanConsumer[]
      inFlight: number
      concurrency: number
      addresses: readonly string[]
      started: number
      opened: number
      failed: number
      histogram: Histogram
      firstStartUs: number
      lastOpenUs: number
      failures: string[]
      pending: Set<LeanConsumer>
      done: (result: ConnectResult) => void
    }
  | undefined

let closing: { left: number; done: () => void } | undefined

const host: ConsumerHost = {
  latency,
  opened(consumer) {
    if (consumer.droppedAtUs > 0) {
      reconnectUs.record(consumer.openUs - consumer.droppedAtUs)
      consumer.droppedAtUs = 0
    }
    const run = connecting
    if (!run || !run.pending.delete(consumer)) return
    run.opened++
    run.lastOpenUs = Math.max(run.lastOpenUs, consumer.openUs)
    run.histogram.record(consumer.openUs - consumer.connectStartUs)
    run.inFlight--
    pumpConnects()
  },
  closed(consumer, reason) {
    closeReasons.set(reason, (closeReasons.get(reason) ?? 0) + 1)
    const run = connecting
    // A connect that fails while connecting is reported by the connect, not retried.
    const isFailedConnect = run !== undefined && run.pending.delete(consumer)
    if (isFailedConnect) {
      run.failed++
      // When and where it ended tells a server's refusal from a timeout (uWS closes a request not read in ~10 s).
      const seconds = (nowUs() - consumer.connectStartUs) / 1e6
      const where = consumer.isUpgraded ? 'after its 101' : 'before its 101'
      if (run.failures.length < 5)
        run.failures.push(`${reason}, ${where}, ${seconds.toFixed(1)} s after it began`)
      run.inFlight--
      pumpConnects()
    }
    if (closing && --closing.left === 0) {
      closing.done()
      closing = undefined
    }
    if (reconnectDelayMs !== undefined && !closing && !isFailedConnect) {
      // Spread like real clients' back-off, so that a node's consumers do not all come back at once.
      const delayMs = reconnectDelayMs * (0.5 + Math.random())
      setTimeout(() => consumer.isOpen || consumer.connect(), delayMs)
    }
  },
}

function pumpConnects(): void {
  const run = connecting
  if (!run) return
  while (run.inFlight < run.concurrency && run.queue.length > 0) {
    const consumer = run.queue.pop()!
    run.inFlight++
    run.pending.add(consumer)
    const address = run.addresses.length > 0 ? run.addresses[run.started % run.addresses.length] : undefined
    run.started++
    consumer.connect(address)
    if (run.firstStartUs === 0) run.firstStartUs = consumer.connectStartUs
  }
  if (run.inFlight === 0 && run.queue.length === 0) {
    connecting = undefined
    run.done({
      opened: run.opened,
      failed: run.failed,
      connectUs: run.histogram.toData(),
      firstStartUs: run.firstStartUs,
      lastOpenUs: run.lastOpenUs,
      failures: run.failures,
    })
  }
}

function connectAll(concurrency: number, addresses: readonly string[]): Promise<ConnectResult> {
  return new Promise(done => {
    connecting = {
      queue: consumers.filter(consumer => !consumer.isOpen).reverse(),
      inFlight: 0,
      concurrency,
      addresses,
      started: 0,
      opened: 0,
      failed: 0,
      histogram: new Histogram(),
      firstStartUs: 0,
      lastOpenUs: 0,
      failures: [],
      pending: new Set(),
      done,
    }
    pumpConnects()
  })
}

function closeAll(): Promise<void> {
  const open = consumers.filter(consumer => consumer.isOpen)
  if (open.length === 0) return Promise.resolve()
  return new Promise(done => {
    closing = { left: open.length, done }
    for (const consumer of open) consumer.close()
  })
}

function report(detail: boolean): WorkerReport {
  let open = 0
  let received = 0
  let dups = 0
  let gaps = 0
  let warmups = 0
  let closes = 0
  let lastAt = 0
  let wireBytes = 0
  for (const consumer of consumers) {
    wireBytes += consumer.wireBytes - consumer.wireBytesBase
    if (consumer.isOpen) open++
    received += consumer.received
    dups += consumer.dups
    gaps += consumer.gaps
    warmups += consumer.warmups
    closes += consumer.closes
    if (consumer.lastAt > lastAt) lastAt = consumer.lastAt
  }
  return {
    consumers: consumers.length,
    open,
    received,
    dups,
    gaps,
    warmups,
    closes,
    lastAt,
    wireBytes,
    closeReasons: Object.fromEntries(closeReasons),
    ...(detail && {
      latency: latency.toData(),
      loopDelay: loopDelay.toData(),
      perConsumer: {
        received: consumers.map(consumer => consumer.received),
        dups: consumers.map(consumer => consumer.dups),
        sids: consumers.map(consumer => consumer.sid),
      },
    }),
  }
}

function audit(expected: Readonly<Record<string, readonly number[]>>): AuditReport {
  let count = 0
  let open = 0
  let received = 0
  let missing = 0
  let dups = 0
  let outOfOrder = 0
  const missingSamples: string[] = []
  for (const consumer of consumers) {
    const room = consumer.spec.room
    if (room === undefined) continue
    count++
    if (consumer.isOpen) open++
    received += consumer.received
    const lacks = consumer.missing(expected[room] ?? [])
    missing += lacks
    dups += consumer.dups
    outOfOrder += consumer.outOfOrder
    if (lacks > 0 && missingSamples.length < 3)
      missingSamples.push(
        `${consumer.sid} (${room}, ${consumer.isOpen ? 'open' : 'closed'}): received ${consumer.received}, ` +
          `missing ${lacks}, closes ${consumer.closes}, last close: ${consumer.lastCloseReason || 'none'}`,
      )
  }
  return {
    consumers: count,
    open,
    received,
    missing,
    dups,
    outOfOrder,
    reconnectUs: reconnectUs.toData(),
    missingSamples,
  }
}

function reset(): void {
  latency.reset()
  loopDelay.reset()
  closeReasons.clear()
  for (const consumer of consumers) {
    consumer.wireBytesBase = consumer.wireBytes
    consumer.received =
      consumer.dups =
      consumer.gaps =
      consumer.warmups =
      consumer.closes =
      consumer.lastAt =
        0
  }
}

// The generator's own share of a measured latency: a consumer reads a frame only when its thread's loop gets to it.
recordLoopDelay(loopDelay)

// v3 clients ping on their own; one sweep a second covers thousands of them.
setInterval(() => {
  if (!hasV3) return
  const now = Date.now()
  for (const consumer of consumers) consumer.heartbeat(now)
}, 1000).unref()

/** Commands come from the pool: the thread's port, or a generator process's IPC channel. */
type Command = { seq: number; command: WorkerCommand }
const channel = parentPort ?? {
  on: (event: 'message', listener: (message: Command) => void) => process.on(event, listener),
  postMessage: (message: unknown) => process.send!(message),
}
if (!parentPort) process.on('disconnect', () => process.exit(0)) // the bench went away: do not linger

channel.on('message', async (message: Command) => {
  const { seq, command } = message
  let reply: unknown
  switch (command.op) {
    case 'add':
      for (const spec of command.specs) {
        consumers.push(new LeanConsumer(spec, host))
        if (spec.eio === 3) hasV3 = true
      }
      reply = consumers.length
      break
    case 'connect':
      reply = await connectAll(command.concurrency, command.localAddresses)
      break
    case 'report':
      reply = report(command.detail)
      break
    case 'reset':
      reset()
      break
    case 'close':
      reconnectDelayMs = undefined
      await closeAll()
      break
    case 'reconnect':
      reconnectDelayMs = command.delayMs
      break
    case 'stall':
      for (const consumer of consumers.slice(0, command.count)) consumer.stallReading()
      break
    case 'unstall':
      for (const consumer of consumers) consumer.resumeReading()
      break
    case 'audit':
      reply = audit(command.expected)
      break
  }
  channel.postMessage({ seq, reply })
})
