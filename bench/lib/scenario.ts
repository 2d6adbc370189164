/**
 * What a scenario is, what it gets for one run against one target, and the
 * steps most scenarios share (connect consumers, join them, warm up, wait
 * for deliveries). One scenario per file in bench/scenarios/.
 */
import type { Config } from '../../src/config/defaults.js'
import type { ConsumerPool, PoolReport } from '../load/consumer-pool.js'
import { makeMessage, nowUs } from '../load/message.js'
import type { Publisher } from '../load/publisher.js'
import type { BenchUser, RunningTarget, TargetName } from '../servers/targets.js'
import { PerfRecording } from './perf.js'
import { CpuMeter, type CpuTimes, cpuStallUs, ownCpuTimes } from './proc.js'
import type { BenchRedis } from './redis-server.js'

export interface MetricDef {
  readonly key: string
  readonly label: string
  readonly unit: string
  /** Which way is better; ratios and the chart use it. */
  readonly better: 'higher' | 'lower' | 'none'
  readonly digits?: number
}

export type Metrics = Record<string, number>

export interface Check {
  readonly label: string
  readonly ok: boolean
  readonly detail: string
}

/** What the delivery scenarios (fanout, unicast) report. */
export const DELIVERY_METRICS: readonly MetricDef[] = [
  { key: 'deliveriesPerSec', label: 'deliveries/s', unit: '/s', better: 'higher' },
  { key: 'fullDeliveryMs', label: 'full delivery', unit: 'ms', better: 'lower' },
  { key: 'p99Ms', label: 'p99 publish→ack', unit: 'ms', better: 'lower', digits: 1 },
  { key: 'lost', label: 'lost', unit: '', better: 'lower' },
  { key: 'dups', label: 'dups', unit: '', better: 'lower' },
]

/** The check of every run, --smoke too: nothing lost, and nothing twice where duplicates are counted. */
function zeroLoss(scenario: string, snapper: Metrics): Check {
  const { lost, dups } = snapper
  return {
    label: `${scenario}: zero loss`,
    ok: lost === 0 && (dups ?? 0) === 0,
    detail: dups === undefined ? `lost ${lost}` : `lost ${lost}, dups ${dups}`,
  }
}

/** Medians per target (and `noise`: the baseline run a second time). */
export type Medians = Partial<Record<TargetName | 'noise', Metrics>>

/**
 * Snapper's checks in a scenario: zero loss in every run, and the performance
 * targets unless --smoke (whose counts are too small to mean anything).
 */
export function snapperChecks(
  scenario: string,
  medians: Medians,
  smoke: boolean,
  targets: (snapper: Metrics) => Check[],
): Check[] {
  const snapper = medians.snapper
  if (!snapper) return []
  return smoke ? [zeroLoss(scenario, snapper)] : [zeroLoss(scenario, snapper), ...targets(snapper)]
}

/**
 * The targets a scenario sets against its peers of the same run: Snapper's
 * `key` at least `socketio` times Socket.IO's and `uws` of the bare uWS
 * ceiling's. A peer that did not run (`--targets`) is not checked.
 */
export function peerChecks(
  scenario: string,
  key: string,
  medians: Medians,
  snapper: Metrics,
  least: { readonly socketio: number; readonly uws: number },
): Check[] {
  const value = snapper[key]!
  const sio = medians.socketio?.[key]
  const uws = medians.uws?.[key]
  const checks: Check[] = []
  if (sio)
    checks.push({
      label: `${scenario} ≥ ${least.socketio}× Socket.IO`,
      ok: value >= least.socketio * sio,
      detail: `${(value / sio).toFixed(2)}×`,
    })
  if (uws)
    checks.push({
      label: `${scenario} ≥ ${Math.round(100 * least.uws)}% of uWS ceiling`,
      ok: value >= least.uws * uws,
      detail: `${((100 * value) / uws).toFixed(0)}%`,
    })
  return checks
}

export interface Scenario {
  readonly name: string
  readonly title: string
  /** Targets in run order; the first is the baseline that runs twice for the noise row. */
  readonly targets: readonly TargetName[]
  readonly noise: boolean
  readonly metrics: readonly MetricDef[]
  /** The metric the chart and the summary show. */
  readonly headline: string
  readonly snapperConfig?: Partial<Config>
  /** Overrides for --smoke only (shorter timers, so the CI run stays short). */
  readonly smokeConfig?: Partial<Config>
  /** Runs only when named (and with --smoke), not in a plain `npm run bench`. */
  readonly onlyWhenNamed?: boolean
  /** Its consumers run in generator processes (--generators N, default 2), not threads of the bench. */
  readonly generatorProcesses?: boolean
  /** Longest one run may take; default 120 s. */
  readonly timeoutMs?: number
  run(ctx: RunContext): Promise<Metrics>
  checks(medians: Medians, ctx: { smoke: boolean }): Check[]
}

export interface RunContext {
  readonly target: RunningTarget
  readonly redis: BenchRedis
  readonly pool: ConsumerPool
  readonly smoke: boolean
  /** Source addresses for consumers (127.0.0.2 …). */
  readonly localAddresses: readonly string[]
  /** Shown on the progress bar. */
  phase(text: string): void
  /** A line for the JSON and RESULTS.md (a breakdown, an observation). */
  note(text: string): void
  /** Starts the CPU window of the run (servers, Redis, this generator), the servers' loop watch, and their profiles with --profile. */
  startMeasuring(): Promise<void>
  /** Ends it: CPU seconds of each party, and the window in seconds. */
  stopMeasuring(): Promise<{
    brokerCpuS: number
    redisCpuS: number
    genCpuS: number
    /** The kernel's share of the three above (system time): sends, receives, wake-ups. */
    kernelCpuS: number
    windowS: number
    cpuStallPct: number
    /** The servers' own loop over the window (LoopWatch): delay p99 (the highest process's), GC pauses summed. */
    serverDelayP99Ms: number
    serverGcMs: number
  }>
}

/**
 * Makes the CPU meters a run needs; with `profileBase`, every server process
 * is profiled over the same window (`<profileBase>-<i>.cpuprofile`), and with
 * `perfBase` recorded on the CPU with Redis (`<perfBase>.data` and `.txt`). The
 * generator is this process and the pool's generator processes, if any.
 * `abandon` ends a recording a failed run left open (perf would go on
 * sampling Redis through the runs after it).
 */
export function cpuWindow(
  target: RunningTarget,
  redis: BenchRedis,
  pool: ConsumerPool,
  profileBase?: string,
  perfBase?: string,
): Pick<RunContext, 'startMeasuring' | 'stopMeasuring'> & { abandon(): Promise<void> } {
  const broker = new CpuMeter(() => target.pids)
  const redisCpu = new CpuMeter(() => [...redis.pids])
  const generators = new CpuMeter(() => pool.pids)
  let genStart: CpuTimes = { user: 0, system: 0 }
  let startedUs = 0
  let stallStart: number | undefined
  let windows = 0 // a run that measures twice writes its second profile beside the first
  const windowed = (base: string): string => (windows === 0 ? base : `${base}-window${windows + 1}`)
  let recording: PerfRecording | undefined
  /** The open recording, if any, now no longer open. */
  const takeRecording = (): PerfRecording | undefined => {
    const open = recording
    recording = undefined
    return open
  }
  return {
    async startMeasuring() {
      if (perfBase) recording = await PerfRecording.start([...target.pids, ...redis.pids], windowed(perfBase))
      if (profileBase) await target.startProfile()
      await target.startLoopWatch()
      broker.start()
      redisCpu.start()
      generators.start()
      genStart = ownCpuTimes()
      stallStart = cpuStallUs()
      startedUs = nowUs()
    },
    async stopMeasuring() {
      const windowUs = nowUs() - startedUs
      const loop = await target.stopLoopWatch()
      const stall = cpuStallUs()
      const own = ownCpuTimes()
      const generated = generators.read()
      const brokerTimes = broker.read()
      const redisTimes = redisCpu.read()
      const genTimes: CpuTimes = {
        user: own.user - genStart.user + generated.user,
        system: own.system - genStart.system + generated.system,
      }
      const seconds = (times: CpuTimes): number => times.user + times.system
      const cpu = {
        brokerCpuS: seconds(brokerTimes),
        redisCpuS: seconds(redisTimes),
        genCpuS: seconds(genTimes),
        kernelCpuS: brokerTimes.system + redisTimes.system + genTimes.system,
        windowS: windowUs / 1e6,
        cpuStallPct:
          stall !== undefined && stallStart !== undefined
            ? Math.round((100 * (stall - stallStart)) / windowUs)
            : NaN,
        serverDelayP99Ms: ms(loop.loopDelayP99Us),
        serverGcMs: Math.round(loop.gcMs),
      }
      await takeRecording()?.stop()
      if (profileBase) await target.stopProfile(windowed(profileBase))
      windows++
      return cpu
    },
    async abandon() {
      await takeRecording()
        ?.stop()
        .catch(() => {}) // the run failed already: that is what it reports
    },
  }
}

let userCounter = 0
/** `count` fresh users (24 hex digits, unique in this process) with the given rooms. */
export function makeUsers(count: number, rooms: readonly string[] = []): BenchUser[] {
  const stamp = Date.now().toString(16).padStart(12, '0').slice(-12)
  return Array.from({ length: count }, () => ({
    userId: stamp + (++userCounter).toString(16).padStart(12, '0'),
    rooms,
  }))
}

/** Adds and connects the users' consumers; fails the run if any does not open. */
export async function connectUsers(
  ctx: RunContext,
  users: readonly BenchUser[],
  concurrency = 500,
): Promise<void> {
  const first = ctx.pool.size
  await ctx.pool.add(users.map((user, i) => ctx.target.consumerSpec(first + i, user)))
  ctx.phase(`connecting ${users.length} consumers`)
  const result = await ctx.pool.connect(concurrency, ctx.localAddresses)
  if (result.failed > 0)
    throw new Error(`${result.failed} consumers did not open: ${result.failures.join('; ')}`)
}

/** Snapper: `subscribe` each user's consumer to the room (peers joined it in the handshake). */
export async function joinRoom(
  ctx: RunContext,
  publisher: Publisher,
  room: string,
  users: readonly BenchUser[],
): Promise<void> {
  if (!ctx.target.joinsThroughProducer) return
  ctx.phase(`joining ${users.length} consumers to ${room}`)
  await publisher.subscribe(
    room,
    users.map(user => ctx.target.credentials(user).consumerId),
  )
}

/**
 * One seq-0 message to each room, and waits until `expected` consumers have
 * it: every subscription is in place and every connection warm before the
 * clock starts. Then the counters are zeroed.
 */
export async function warmUp(
  ctx: RunContext,
  publisher: Publisher,
  rooms: readonly string[],
  expected: number,
): Promise<void> {
  ctx.phase('warming up')
  const pairs = rooms.map(room => [room, makeMessage(0, nowUs(), 16)] as const)
  for (let start = 0; start < pairs.length; start += 50) {
    if (!publisher.publish(pairs.slice(start, start + 50))) await publisher.drain()
  }
  const deadline = Date.now() + 30_000
  for (;;) {
    const report = await ctx.pool.report()
    if (report.warmups >= expected) break
    if (report.open < report.consumers) {
      // A consumer the server dropped during set-up reconnects, as real clients do (same token, same
      // consumer id, so it catches up from its cursor); the run goes on, and says so.
      ctx.note(
        `set-up: ${report.consumers - report.open} consumer(s) closed by the server (${JSON.stringify(report.closeReasons)}), reconnected`,
      )
      await ctx.pool.connect(100, ctx.localAddresses)
    }
    if (Date.now() > deadline) throw new Error(`warm-up: ${report.warmups} of ${expected} consumers reached`)
    await sleep(20)
  }
  await ctx.pool.reset()
}

/**
 * Polls the consumers until `expected` messages arrived, or nothing arrived
 * for `idleMs` (then the rest counts as lost), or `timeoutMs` passed.
 * Returns the detailed report (latencies, per-consumer counts).
 */
export async function waitForDeliveries(
  ctx: RunContext,
  expected: number,
  options: { idleMs?: number; timeoutMs?: number } = {},
): Promise<PoolReport> {
  const { idleMs = 5000, timeoutMs = 90_000 } = options
  const started = Date.now()
  let last = -1
  let lastChange = Date.now()
  for (;;) {
    const report = await ctx.pool.report()
    ctx.phase(`delivered ${report.received.toLocaleString('en')} / ${expected.toLocaleString('en')}`)
    if (report.received !== last) {
      last = report.received
      lastChange = Date.now()
    }
    const now = Date.now()
    if (report.received - report.dups >= expected || now - lastChange > idleMs || now - started > timeoutMs)
      break
    await sleep(report.received === 0 ? 5 : 25)
  }
  return ctx.pool.report(true)
}

/** Publishes `pairs` flat out as notifications of `batch` pairs, honouring socket backpressure. */
export async function publishFlatOut(
  publisher: Publisher,
  count: number,
  pair: (i: number) => readonly [string, string],
  batch = 50,
): Promise<void> {
  for (let start = 0; start < count; start += batch) {
    const pairs: (readonly [string, string])[] = []
    for (let i = start; i < Math.min(count, start + batch); i++) pairs.push(pair(i))
    if (!publisher.publish(pairs)) await publisher.drain()
  }
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Messages received once, and the ones that never came. */
export function lossOf(report: PoolReport, expected: number): { lost: number; dups: number } {
  return { lost: Math.max(0, expected - (report.received - report.dups)), dups: report.dups }
}

/** µs → ms, rounded to 0.01. */
export const ms = (us: number): number => Math.round(us / 10) / 100
