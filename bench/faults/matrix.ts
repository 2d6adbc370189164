/**
 * One fault, end to end: a fresh deployment, steady load, a warm-up, the
 * fault, time to recover, then the load stops and every consumer is given
 * time to receive what its room should deliver; then the counts, as the
 * clients saw them. Each fault gets its own deployment, so that no fault's
 * aftermath is counted against the next.
 */
import { Cleanup, Deployment, MemoryPeak, type DeploymentOptions } from './deployment.js'
import { FAULTS, type Fault, type Timing } from './faults.js'
import { FaultLoad, type LoadOptions, type LoadOutcome } from './load.js'

export interface MatrixOptions {
  readonly faults: readonly string[]
  readonly deployment: Omit<DeploymentOptions, 'redis'>
  readonly load: LoadOptions
  readonly timing: Timing
  /** Load before the fault, and after the deployment is whole again, in ms. */
  readonly warmMs: number
  readonly afterMs: number
  /** Settling: stop waiting once nothing arrived for quietMs, or after maxMs. */
  readonly quietMs: number
  readonly settleMaxMs: number
  readonly log: (line: string) => void
}

/** A fault's row: what the clients saw (a LoadOutcome's counts), and what it cost. */
export interface FaultRow extends Omit<LoadOutcome, 'audit'> {
  readonly name: string
  readonly title: string
  /** Deliveries of a message the consumer already had. */
  readonly duplicated: number
  /** First deliveries after a later message of the same room. */
  readonly outOfOrder: number
  readonly reconnects: number
  /** Consumers with an open session at the end, of all. */
  readonly openAtEnd: number
  readonly consumers: number
  readonly reconnectP99Ms: number
  readonly peakBrokerBytes: number
  readonly peakRedisBytes: number
  /** How long the fault took to inject and recover from, in ms. */
  readonly faultMs: number
  readonly error?: string
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export function faultNamed(name: string): Fault {
  const fault = FAULTS.find(f => f.name === name)
  if (!fault) throw new Error(`unknown fault ${name} (${FAULTS.map(f => f.name).join(', ')})`)
  return fault
}

export async function runFault(fault: Fault, options: MatrixOptions, notes: string[]): Promise<FaultRow> {
  const cleanup = new Cleanup()
  const empty = { name: fault.name, title: fault.title }
  try {
    options.log(`${fault.name}: starting the deployment`)
    const deployment = await Deployment.start({ ...options.deployment, redis: fault.redis }, cleanup)
    const load = await FaultLoad.start(deployment, options.load)
    cleanup.teardown(() => load.close())
    const memory = new MemoryPeak(deployment)
    cleanup.teardown(() => memory.stop())
    await sleep(options.warmMs)
    options.log(`${fault.name}: ${fault.title}`)
    const started = Date.now()
    await fault.inject({ deployment, load, timing: options.timing, note: text => notes.push(text) })
    const faultMs = Date.now() - started
    await sleep(options.afterMs)
    await load.stop(options.settleMaxMs)
    options.log(`${fault.name}: settling`)
    const outcome = await load.settle(options.quietMs, options.settleMaxMs)
    memory.stop()
    const { audit } = outcome
    for (const sample of audit.missingSamples)
      notes.push(`${fault.name}: a consumer that misses messages: ${sample}`)
    return {
      ...empty,
      answered: outcome.answered,
      failed: outcome.failed,
      unanswered: outcome.unanswered,
      notified: outcome.notified,
      lostAnswered: outcome.lostAnswered,
      lostNotified: outcome.lostNotified,
      duplicated: audit.dups,
      outOfOrder: audit.outOfOrder,
      reconnects: audit.reconnectUs.count,
      openAtEnd: audit.open,
      consumers: audit.consumers,
      reconnectP99Ms: audit.reconnectUs.quantile(0.99) / 1000,
      peakBrokerBytes: memory.broker,
      peakRedisBytes: memory.redis,
      faultMs,
    }
  } catch (err) {
    options.log(`${fault.name}: failed: ${String(err)}`)
    return { ...failedRow, ...empty, error: err instanceof Error ? err.message : String(err) }
  } finally {
    await cleanup.run()
  }
}

const failedRow: Omit<FaultRow, 'name' | 'title'> = {
  answered: NaN,
  failed: NaN,
  unanswered: NaN,
  notified: NaN,
  lostAnswered: NaN,
  lostNotified: NaN,
  duplicated: NaN,
  outOfOrder: NaN,
  reconnects: NaN,
  openAtEnd: NaN,
  consumers: NaN,
  reconnectP99Ms: NaN,
  peakBrokerBytes: NaN,
  peakRedisBytes: NaN,
  faultMs: NaN,
}

export async function runMatrix(options: MatrixOptions): Promise<{ rows: FaultRow[]; notes: string[] }> {
  const notes: string[] = []
  const rows: FaultRow[] = []
  for (const name of options.faults) rows.push(await runFault(faultNamed(name), options, notes))
  return { rows, notes }
}

const COLUMNS: readonly [string, (row: FaultRow) => string][] = [
  ['fault', row => row.name],
  ['requests answered', row => count(row.answered)],
  ['failed', row => count(row.failed)],
  ['unanswered', row => count(row.unanswered)],
  ['notifications', row => count(row.notified)],
  ['lost (answered)', row => count(row.lostAnswered)],
  ['lost (notifications)', row => count(row.lostNotified)],
  ['duplicated', row => count(row.duplicated)],
  ['out of order', row => count(row.outOfOrder)],
  ['reconnects', row => count(row.reconnects)],
  ['open at the end', row => `${count(row.openAtEnd)} / ${count(row.consumers)}`],
  ['reconnect p99 (ms)', row => count(row.reconnectP99Ms)],
  ['peak RSS broker (MB)', row => megabytes(row.peakBrokerBytes)],
  ['peak RSS Redis (MB)', row => megabytes(row.peakRedisBytes)],
  ['fault (s)', row => (Number.isFinite(row.faultMs) ? (row.faultMs / 1000).toFixed(1) : '–')],
]

const count = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en') : '–')
const megabytes = (bytes: number): string =>
  Number.isFinite(bytes) ? String(Math.round(bytes / 2 ** 20)) : '–'

/** The table as Markdown (the console prints the same). */
export function markdownTable(rows: readonly FaultRow[]): string {
  const lines = [
    `| ${COLUMNS.map(([label]) => label).join(' | ')} |`,
    `|${COLUMNS.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map(row => `| ${COLUMNS.map(([, cell]) => cell(row)).join(' | ')} |`),
  ]
  for (const row of rows) if (row.error) lines.push('', `- ${row.name} failed: ${row.error}`)
  return lines.join('\n')
}
