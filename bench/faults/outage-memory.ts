/**
 * `node dist/bench/faults/outage-memory.js [--consumers N] [--down-sec S] [--rate N]`
 *
 * Memory through a long Redis outage: one `snapper start --workers 1` on one
 * Redis (AOF), N lean consumers connected in rooms of 20, snapper-producers
 * publishing (every other message a request) the whole time; Redis is
 * SIGKILLed for S seconds (default 300), then started again on its
 * append-only file. Every 15 s the broker's heap (all its processes, from
 * /metrics), its RSS, the publish backlog and the commands in the Redis
 * clients' offline queues are sampled; at the end, what the consumers got is
 * audited. Prints a markdown table for docs/RELIABILITY.md.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Tokens } from '../../src/auth/token.js'
import { describeMachine, loadAverage, redisServerVersion } from '../lib/proc.js'
import { Cleanup, Deployment, SECRET } from './deployment.js'
import { FaultLoad } from './load.js'

const SAMPLE_MS = 15_000

interface Sample {
  readonly phase: string
  readonly atSec: number
  readonly heapBytes: number
  readonly rssBytes: number
  readonly backlogBytes: number
  readonly offlineCommands: number
  readonly sessions: number
}

function parse(argv: readonly string[]): { consumers: number; downSec: number; rate: number } {
  const options = { consumers: 10_000, downSec: 300, rate: 200 }
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1])
    if (!Number.isInteger(value) || value < 1) throw new Error(`${argv[i]} needs a positive integer`)
    if (argv[i] === '--consumers') options.consumers = value
    else if (argv[i] === '--down-sec') options.downSec = value
    else if (argv[i] === '--rate') options.rate = value
    else throw new Error(`unknown option ${argv[i]}`)
    i++
  }
  return options
}

/** One sample of a Prometheus text exposition, summed over its series. */
function metric(text: string, name: string): number {
  let sum = 0
  for (const line of text.split('\n'))
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(' ').at(-1))
  return sum
}

async function main(): Promise<void> {
  const { consumers, downSec, rate } = parse(process.argv.slice(2))
  const log = (line: string): void => void process.stderr.write(`${line}\n`)
  const started = Date.now()
  const machine = describeMachine(redisServerVersion())
  const loadAtStart = loadAverage()
  const cleanup = new Cleanup()
  const samples: Sample[] = []
  try {
    const deployment = await Deployment.start({ hosts: 1, workersPerHost: 1, redis: 'standalone' }, cleanup)
    const host = deployment.hosts[0]!
    const operator = new Tokens([SECRET]).sign({ name: 'snapper' })
    const sample = async (phase: string): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${host.cli.ports.admin}/metrics`, {
        headers: { authorization: `Bearer ${operator}` },
        signal: AbortSignal.timeout(10_000),
      })
      const text = await res.text()
      const row: Sample = {
        phase,
        atSec: Math.round((Date.now() - started) / 1000),
        heapBytes: metric(text, 'nodejs_heap_size_used_bytes'),
        rssBytes: deployment.memory().broker,
        backlogBytes: metric(text, 'snapper_publish_pending_bytes'),
        offlineCommands: metric(text, 'snapper_redis_offline_commands'),
        sessions: metric(text, 'snapper_consumer_sessions'),
      }
      samples.push(row)
      log(JSON.stringify(row))
    }

    log(`connecting ${consumers} consumers`)
    const load = await FaultLoad.start(deployment, {
      consumers,
      roomSize: 20,
      producers: 2,
      ratePerSec: rate,
      messageBytes: 100,
      threads: 2,
      reconnectMs: 1000,
    })
    await sleep(SAMPLE_MS)
    await sample('before')

    log(`Redis down for ${downSec} s`)
    await deployment.redis!.kill('SIGKILL')
    const downUntil = Date.now() + downSec * 1000
    while (Date.now() < downUntil) {
      await sleep(Math.min(SAMPLE_MS, downUntil - Date.now()))
      await sample('down')
    }
    await deployment.redis!.restart()
    await sleep(SAMPLE_MS)
    await sample('back')

    await load.stop(60_000)
    const outcome = await load.settle(10_000, 180_000)
    await sample('settled')
    await load.close()

    const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(1)
    const lines = [
      `Run ${new Date(started).toISOString().slice(0, 16).replace('T', ' ')} UTC, ` +
        `\`node dist/bench/faults/outage-memory.js --consumers ${consumers} --down-sec ${downSec} --rate ${rate}\`, ` +
        `${Math.round((Date.now() - started) / 60_000)} min; ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, ` +
        `Redis ${machine.redis}, load average ${loadAtStart} at the start.`,
      '',
      '| phase | at (s) | heap used (MiB) | broker RSS (MiB) | publish backlog (KiB) | offline commands | sessions |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...samples.map(
        s =>
          `| ${s.phase} | ${s.atSec} | ${mib(s.heapBytes)} | ${mib(s.rssBytes)} | ` +
          `${Math.round(s.backlogBytes / 1024)} | ${s.offlineCommands} | ${s.sessions} |`,
      ),
      '',
      `Requests answered ${outcome.answered}, failed ${outcome.failed}, unanswered ${outcome.unanswered}; ` +
        `deliveries lost: ${outcome.lostAnswered} of answered requests, ${outcome.lostNotified} of ` +
        `${outcome.notified} notifications; duplicated ${outcome.audit.dups}; consumers open at the end ` +
        `${outcome.audit.open} of ${outcome.audit.consumers}.`,
    ]
    process.stdout.write(`\n${lines.join('\n')}\n`)
  } finally {
    await cleanup.run()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()
