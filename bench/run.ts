/**
 * The bench runner: `npm run bench -- [scenario...] [--workers N] [--json out.json] [--runs 3] [--smoke]`.
 *
 * Starts its own redis-server, then for each scenario and each run, each
 * target in turn (the baseline first, and once more at the end of the run
 * for the noise row): a fresh server, fresh consumer threads, a flushed
 * Redis. Prints a table per scenario (medians, ratios, checks), writes JSON,
 * appends a dated section to bench/RESULTS.md and draws bench/results.svg.
 * Exit code 1 if a run failed or, with --smoke, if a check failed.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { SingleBar } from 'cli-progress'
import { parseArgs } from './lib/args.js'
import { renderChart } from './lib/chart.js'
import { assertPerf, PERF_NODE_FLAGS } from './lib/perf.js'
import { describeMachine, loadAverage, redisServerVersion } from './lib/proc.js'
import { startBenchRedis, type BenchRedis } from './lib/redis-server.js'
import {
  appendResults,
  consoleTable,
  markdownSection,
  mediansOf,
  writeJson,
  type BenchResult,
  type ScenarioResult,
  type Series,
} from './lib/report.js'
import { cpuWindow, type Metrics, type Scenario } from './lib/scenario.js'
import { ConsumerPool, loopbackAddresses } from './load/consumer-pool.js'
import { SCENARIOS } from './scenarios/index.js'
import { RunningTarget, TARGET_LABELS, type TargetName } from './servers/targets.js'

const BENCH_DIR = fileURLToPath(new URL('../../bench/', import.meta.url))
/**
 * Source addresses for consumers, a fresh 8 for every run: 10,000 connections
 * × 3 runs × 4 targets would exhaust one address's ports, and the generator
 * binds before it connects, so every port an earlier run closed (TIME_WAIT,
 * 60 s) slows the kernel's search for a free one: a connections run after
 * the others measured the generator's binds (16 s of its CPU), not the server.
 */
const SOURCE_ADDRESSES = loopbackAddresses(240)
const ADDRESSES_PER_RUN = 8
let nextSourceAddress = 0

function sourceAddressesForRun(): string[] {
  const start = nextSourceAddress
  nextSourceAddress = (start + ADDRESSES_PER_RUN) % SOURCE_ADDRESSES.length
  return SOURCE_ADDRESSES.slice(start, start + ADDRESSES_PER_RUN)
}
/** Longest one run of one scenario against one target may take, unless the scenario says. */
const RUN_TIMEOUT_MS = 120_000

interface Progress {
  update(payload: Record<string, string>): void
  increment(): void
  stop(): void
}

function progressBar(total: number, name: string, quiet: boolean): Progress {
  if (quiet || !process.stderr.isTTY) return { update() {}, increment() {}, stop() {} }
  const bar = new SingleBar({
    format: `${name.padEnd(12)} [{bar}] {value}/{total} | run {run} {target}: {phase}`,
    barsize: 20,
    hideCursor: true,
    clearOnComplete: true,
    stream: process.stderr,
  })
  bar.start(total, 0, { run: '', target: '', phase: 'starting' })
  return {
    update: payload => bar.update(payload),
    increment: () => bar.increment(),
    stop: () => bar.stop(),
  }
}

async function runOnce(
  scenario: Scenario,
  target: TargetName,
  redis: BenchRedis,
  args: ReturnType<typeof parseArgs>,
  progress: Progress,
  notes: string[],
): Promise<Metrics> {
  await redis.reset()
  const runName = `${scenario.name}-${target}-${new Date().toISOString().replace(/[:.]/g, '')}`
  const base = (dir: string | undefined): string | undefined => {
    if (dir === undefined) return undefined
    mkdirSync(dir, { recursive: true })
    return `${dir}/${runName}`
  }
  const profileBase = base(args.profileDir)
  const perfBase = base(args.perfDir)
  const secret = randomBytes(12).toString('base64url')
  const running = await RunningTarget.start(target, {
    workers: args.workers,
    redisUrl: redis.url,
    secret,
    prefix: `B${randomBytes(3).toString('hex')}`,
    nodeFlags: args.nodeFlags,
    allNodeFlags: perfBase ? PERF_NODE_FLAGS : [],
    snapperConfig: {
      ...scenario.snapperConfig,
      ...(args.smoke && scenario.smokeConfig),
      ...args.snapperConfig,
    },
  })
  const pool =
    args.generators !== undefined || scenario.generatorProcesses
      ? new ConsumerPool(args.generators ?? 2, { processes: true })
      : new ConsumerPool(args.threads)
  let timer: NodeJS.Timeout | undefined
  const { abandon, ...measuring } = cpuWindow(running, redis, pool, profileBase, perfBase)
  try {
    const run = scenario.run({
      target: running,
      redis,
      pool,
      smoke: args.smoke,
      localAddresses: sourceAddressesForRun(),
      phase: text => progress.update({ phase: text }),
      note: text => {
        const line = `${TARGET_LABELS[target]}: ${text}`
        if (!notes.includes(line)) notes.push(line) // the same observation in every run is said once
      },
      ...measuring,
    })
    const timeoutMs = scenario.timeoutMs ?? RUN_TIMEOUT_MS
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs / 1000} s`)), timeoutMs)
    })
    return await Promise.race([run, timeout])
  } finally {
    clearTimeout(timer)
    await abandon()
    progress.update({ phase: 'stopping' })
    await pool.close().catch(() => {}) // consumers of a failed run may be half-open: terminate() below ends them
    await pool.terminate()
    await running.stop()
  }
}

async function runScenario(
  scenario: Scenario,
  redis: BenchRedis,
  args: ReturnType<typeof parseArgs>,
): Promise<ScenarioResult> {
  const targets = scenario.targets.filter(target => !args.targets || args.targets.includes(target))
  const order: Series[] = [...targets]
  if (scenario.noise && targets.length > 0 && !args.smoke) order.push('noise')
  const runs: Partial<Record<Series, Metrics[]>> = {}
  const notes: string[] = []
  const errors: string[] = []
  const progress = progressBar(order.length * args.runs, scenario.name, args.quiet)
  for (let run = 1; run <= args.runs; run++) {
    for (const series of order) {
      const target = series === 'noise' ? targets[0]! : series
      progress.update({
        run: `${run}/${args.runs}`,
        target: series === 'noise' ? `${target} (noise)` : target,
        phase: 'starting',
      })
      try {
        const metrics = await runOnce(scenario, target, redis, args, progress, notes)
        ;(runs[series] ??= []).push(metrics)
      } catch (err) {
        errors.push(`run ${run}, ${series}: ${(err as Error).message}`)
      }
      progress.increment()
    }
  }
  progress.stop()
  const medians = mediansOf(runs)
  return {
    name: scenario.name,
    title: scenario.title,
    targets,
    metrics: scenario.metrics,
    headline: scenario.headline,
    runs,
    medians,
    checks: scenario.checks(medians, { smoke: args.smoke }),
    notes,
    errors,
  }
}

function commandLine(): string {
  const argv = process.argv.slice(2)
  return `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`
}

async function main(): Promise<number> {
  const args = parseArgs(
    process.argv.slice(2),
    SCENARIOS.map(s => s.name),
    SCENARIOS.filter(s => !s.onlyWhenNamed).map(s => s.name),
  )
  if (args.perfDir) assertPerf()
  const load = loadAverage()
  const redis = await startBenchRedis(args.redisCluster)
  // Interrupted (Ctrl-C, a CI timeout): take redis-server along; the servers exit when their IPC channel closes.
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      void redis.stop().finally(() => process.exit(130))
    })
  const bench: BenchResult = {
    command: commandLine(),
    date: new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC',
    machine: describeMachine(redisServerVersion()),
    redis: redis.label,
    loadAverage: load,
    workers: args.workers,
    threads: args.threads,
    ...(args.generators && { generators: args.generators }),
    runs: args.runs,
    smoke: args.smoke,
    scenarios: [],
  }
  try {
    for (const name of args.scenarios) {
      const scenario = SCENARIOS.find(s => s.name === name)!
      const result = await runScenario(scenario, redis, args)
      bench.scenarios.push(result)
      process.stdout.write(`${consoleTable(result, args.runs)}\n`)
    }
  } finally {
    await redis.stop()
  }
  if (args.json) writeJson(args.json, bench)
  if (args.record) {
    const chartFile = 'results.svg'
    writeFileSync(`${BENCH_DIR}${chartFile}`, await renderChart(bench))
    appendResults(`${BENCH_DIR}RESULTS.md`, markdownSection(bench, chartFile))
    process.stdout.write(`\nAppended to bench/RESULTS.md; chart in bench/${chartFile}\n`)
  }
  const failedRuns = bench.scenarios.some(result => result.errors.length > 0)
  const failedChecks = bench.scenarios.some(result => result.checks.some(check => !check.ok))
  return failedRuns || (args.smoke && failedChecks) ? 1 : 0
}

main().then(
  code => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  },
)
