/**
 * `npm run faults -- [fault...] [--short] [--consumers N] [--rate N] [--no-record]`
 *
 * The fault matrix: each fault injected into a real deployment (2 hosts of
 * `snapper start --workers 2` on one Redis with AOF, or on a Redis Cluster)
 * under steady load, and what the clients saw: publish requests answered,
 * deliveries lost, duplicated, out of order, reconnect time, peak memory. The
 * full run needs an idle machine (about 15 minutes); it rewrites the table in
 * docs/RELIABILITY.md. `--short` is the small version `npm test` runs.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { describeMachine, loadAverage, redisServerVersion } from '../lib/proc.js'
import { FAULTS } from './faults.js'
import { markdownTable, runMatrix, type MatrixOptions } from './matrix.js'

/** The full matrix: every fault, thousands of consumers, minutes of faults. */
export const FULL: Omit<MatrixOptions, 'log'> = {
  faults: FAULTS.map(fault => fault.name),
  deployment: { hosts: 2, workersPerHost: 2 },
  load: {
    consumers: 4000,
    roomSize: 20,
    producers: 4,
    ratePerSec: 500,
    messageBytes: 100,
    threads: Math.max(1, Math.min(2, availableParallelism())),
    reconnectMs: 1000,
  },
  timing: { redisDownMs: 60_000, cutMs: 10_000, stallMs: 30_000, stalledConsumers: 1000, floodMs: 20_000 },
  warmMs: 10_000,
  afterMs: 30_000,
  quietMs: 10_000,
  settleMaxMs: 120_000,
}

/** A few faults, small load, seconds each: what `npm test` runs. */
export const SHORT: Omit<MatrixOptions, 'log'> = {
  faults: ['worker-kill', 'redis-restart', 'redis-cut'],
  deployment: { hosts: 1, workersPerHost: 2 },
  load: {
    consumers: 40,
    roomSize: 10,
    producers: 2,
    ratePerSec: 100,
    messageBytes: 100,
    threads: 1,
    reconnectMs: 200,
  },
  timing: { redisDownMs: 2000, cutMs: 2000, stallMs: 2000, stalledConsumers: 10, floodMs: 2000 },
  warmMs: 1000,
  afterMs: 2000,
  quietMs: 3000,
  settleMaxMs: 20_000,
}

const RELIABILITY = new URL('../../../docs/RELIABILITY.md', import.meta.url)
const BEGIN = '<!-- fault matrix: begin (npm run faults rewrites this part) -->'
const END = '<!-- fault matrix: end -->'

function parseArgs(argv: readonly string[]): { options: Omit<MatrixOptions, 'log'>; record: boolean } {
  let options = argv.includes('--short') ? SHORT : FULL
  let record = !argv.includes('--short')
  const faults: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const number = (): number => {
      const n = Number(argv[++i])
      if (!Number.isInteger(n) || n < 1) throw new Error(`${arg} needs a positive integer`)
      return n
    }
    if (arg === '--short') continue
    else if (arg === '--no-record') record = false
    else if (arg === '--consumers') options = { ...options, load: { ...options.load, consumers: number() } }
    else if (arg === '--rate') options = { ...options, load: { ...options.load, ratePerSec: number() } }
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`)
    else faults.push(arg)
  }
  if (faults.length > 0) {
    options = { ...options, faults }
    record = false // a partial matrix does not replace the table
  }
  return { options, record }
}

async function main(): Promise<void> {
  const { options, record } = parseArgs(process.argv.slice(2))
  const started = new Date()
  const machine = describeMachine(redisServerVersion())
  const load = loadAverage()
  const { rows, notes } = await runMatrix({ ...options, log: line => process.stderr.write(`${line}\n`) })
  const { deployment, load: traffic, timing } = options
  const command = `npm run faults${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`
  const section = [
    `Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, \`${command}\`, ` +
      `${Math.round((Date.now() - started.getTime()) / 60_000)} min; ${machine.cores} cores (${machine.cpu}), ` +
      `Node ${machine.node}, Redis ${machine.redis}, load average ${load} at the start.`,
    '',
    `Deployment: ${deployment.hosts} host(s) × \`snapper start --workers ${deployment.workersPerHost}\`, ` +
      `one Redis with \`appendfsync always\` (each host through its own TCP proxy), or a Redis Cluster of ` +
      `3 masters and 3 replicas for cluster-failover; default config. Load: ${traffic.consumers} lean ` +
      `consumers (Engine.IO 3 and 4 in turn, websocket) in rooms of ${traffic.roomSize}, reconnecting after ` +
      `~${traffic.reconnectMs} ms to the next gateway; ${traffic.producers} snapper-producer connections ` +
      `publishing ${traffic.ratePerSec} messages/s, every other one a request. Each fault after ` +
      `${options.warmMs / 1000} s of load; load goes on ${options.afterMs / 1000} s after the deployment is ` +
      `whole again. Redis down ${timing.redisDownMs / 1000} s, cut ${timing.cutMs / 1000} s, ` +
      `${timing.stalledConsumers} consumers stalled ${timing.stallMs / 1000} s, flood ${timing.floodMs / 1000} s.`,
    '',
    markdownTable(rows),
    '',
    ...notes.map(note => `- ${note}`),
  ].join('\n')
  process.stdout.write(`\n${section}\n`)
  if (record) {
    const doc = readFileSync(RELIABILITY, 'utf8')
    const from = doc.indexOf(BEGIN)
    const to = doc.indexOf(END)
    if (from < 0 || to < from) throw new Error(`docs/RELIABILITY.md lacks the markers ${BEGIN} … ${END}`)
    writeFileSync(RELIABILITY, `${doc.slice(0, from + BEGIN.length)}\n${section}\n${doc.slice(to)}`)
    process.stderr.write('docs/RELIABILITY.md updated\n')
  }
  if (rows.some(row => row.error)) process.exitCode = 1
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
