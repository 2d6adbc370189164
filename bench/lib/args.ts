/**
 * `npm run bench -- [scenario...] [--workers N] [--json out.json] [--runs 3] [--smoke]`
 * plus: `--threads N` (consumer worker threads), `--generators N` (consumers in N
 * generator processes instead, each with its own open-files limit), `--targets a,b` (a subset of
 * snapper, socketio, uws, floor, scripts), `--redis-cluster` (Snapper on a Redis Cluster of 3 masters),
 * `--profile DIR` (a V8 CPU profile of every server
 * process over each measured window, not start-up; `node dist/bench/profile.js
 * FILE` summarises one), `--perf DIR` (the same windows on the CPU, with Linux perf, Redis
 * included: bench/lib/perf.ts), `--no-record` (no RESULTS.md section, no chart), `--quiet`,
 * `--config JSON` (Snapper config overrides for every node, e.g.
 * `'{"consumerMaxQueue":5000}'`: to try a setting), `--node-flags "…"` (Node/V8
 * flags for Snapper's processes, e.g. `--max-semi-space-size=64`).
 */
import { availableParallelism } from 'node:os'
import type { TargetName } from '../servers/targets.js'

export interface BenchArgs {
  readonly scenarios: readonly string[]
  readonly workers: number
  readonly json: string | undefined
  readonly runs: number
  readonly smoke: boolean
  readonly threads: number
  /** Consumer generator processes; undefined: threads of the bench process (unless the scenario asks for processes). */
  readonly generators: number | undefined
  readonly targets: readonly TargetName[] | undefined
  readonly profileDir: string | undefined
  readonly perfDir: string | undefined
  /** Append to RESULTS.md and draw the chart. Off for --smoke. */
  readonly record: boolean
  readonly quiet: boolean
  readonly snapperConfig: Record<string, unknown>
  readonly nodeFlags: readonly string[]
  /** Run on a Redis Cluster of 3 masters instead of one redis-server (Snapper only: the peers take one Redis URL). */
  readonly redisCluster: boolean
}

const TARGETS: readonly TargetName[] = ['snapper', 'socketio', 'uws', 'floor', 'scripts']

/** `known`: every scenario; `defaults`: the ones run when none is named (--smoke runs every one). */
export function parseArgs(
  argv: readonly string[],
  known: readonly string[],
  defaults: readonly string[] = known,
): BenchArgs {
  const scenarios: string[] = []
  let workers = 1
  let json: string | undefined
  let runs: number | undefined
  let smoke = false
  let threads = Math.max(1, Math.min(4, availableParallelism()))
  let generators: number | undefined
  let targets: TargetName[] | undefined
  let profileDir: string | undefined
  let perfDir: string | undefined
  let record: boolean | undefined
  let quiet = false
  let snapperConfig: Record<string, unknown> = {}
  let nodeFlags: string[] = []
  let redisCluster = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = (): string => {
      const next = argv[++i]
      if (next === undefined) throw new Error(`${arg} needs a value`)
      return next
    }
    const count = (min: number): number => {
      const n = Number(value())
      if (!Number.isInteger(n) || n < min) throw new Error(`${arg} needs an integer ≥ ${min}`)
      return n
    }
    if (arg === '--workers') workers = count(1)
    else if (arg === '--json') json = value()
    else if (arg === '--runs') runs = count(1)
    else if (arg === '--smoke') smoke = true
    else if (arg === '--threads') threads = count(1)
    else if (arg === '--generators') generators = count(1)
    else if (arg === '--profile') profileDir = value()
    else if (arg === '--perf') perfDir = value()
    else if (arg === '--no-record') record = false
    else if (arg === '--quiet') quiet = true
    else if (arg === '--redis-cluster') redisCluster = true
    else if (arg === '--config') snapperConfig = JSON.parse(value()) as Record<string, unknown>
    else if (arg === '--node-flags') nodeFlags = value().split(' ').filter(Boolean)
    else if (arg === '--targets') {
      targets = value().split(',') as TargetName[]
      for (const target of targets)
        if (!TARGETS.includes(target)) throw new Error(`unknown target ${target} (${TARGETS.join(', ')})`)
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`)
    else if (!known.includes(arg)) throw new Error(`unknown scenario ${arg} (${known.join(', ')})`)
    else scenarios.push(arg)
  }
  if (redisCluster && targets?.some(target => target !== 'snapper'))
    throw new Error('--redis-cluster runs Snapper only: the peers take one Redis URL')
  if (redisCluster) targets = ['snapper']
  return {
    scenarios: scenarios.length > 0 ? scenarios : smoke ? known : defaults,
    workers,
    json,
    runs: runs ?? (smoke ? 1 : 3),
    smoke,
    threads,
    generators,
    targets,
    profileDir,
    perfDir,
    record: record ?? !smoke,
    quiet,
    snapperConfig,
    nodeFlags,
    redisCluster,
  }
}
