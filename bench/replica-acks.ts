/**
 * Publish latency with redisReplicaAcks 1 and a healthy replica: a real
 * redis-server master and its replica on loopback, one Snapper node (the
 * bench's snapper-node, from each `--servers` dist tree in turn, alternated
 * round by round: the machine is shared), publishes answered over the
 * producer protocol (LeanProducer requests). Per load: p50/p99/max of the
 * answer, answers/s (from the first send to the last answer), the master's
 * WAIT calls (how many writes one WAIT covered), the node's peak RSS.
 * Results and their reading: bench/RESULTS.md (2026-12-06 13:28).
 *
 *   node dist/bench/replica-acks.js [--servers dist,/other/tree/dist] [--rounds 3]
 *     [--seconds 5] [--loads seq,conc:50,rate:500,rate:2000,rate:10000] [--bytes 100]
 *     [--connections 1] [--stop-replica-ms 0] [--rtt-ms 0] [--config '{"publishMaxPendingBytes":8388608}']
 *
 * Loads: `seq` one publisher awaiting each answer; `conc:N` N connections,
 * each awaiting its answer; `rate:N` N publishes/s sent on one connection
 * without waiting (open loop: an answer that is late does not slow the
 * sending), spread over `--connections`. Each publish is one message of
 * `--bytes` to one of 100 rooms. `--stop-replica-ms N` stops the replica
 * (SIGSTOP) for N ms, 1 s into each load: the node's peak RSS says what the
 * writes gathered meanwhile cost.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { startRedis, type RedisServer } from '../test/helpers/redis.js'
import { Histogram } from './lib/histogram.js'
import { LeanProducer } from './load/producer.js'
import type { FromChild, ServerOptions } from './servers/child.js'

const SECRET = 'bench-replica-acks-secret'
const ROOMS = 100

interface Options {
  servers: string[]
  rounds: number
  seconds: number
  loads: string[]
  bytes: number
  /** Stops the replica (SIGSTOP) this long, 1 s into each load; 0: never. */
  stopReplicaMs: number
  /** Connections a `rate` load's publishes are spread over. */
  connections: number
  /** Round trip added (half each way) to the node's and the replica's links to the master, as a network would. */
  rttMs: number
  /** Snapper config overrides, besides redisReplicaAcks 1. */
  config: Record<string, unknown>
}

function parse(argv: readonly string[]): Options {
  const options: Options = {
    servers: ['dist'],
    rounds: 3,
    seconds: 5,
    loads: ['seq', 'conc:50', 'rate:500', 'rate:2000', 'rate:10000'],
    bytes: 100,
    stopReplicaMs: 0,
    connections: 1,
    config: {},
    rttMs: 0,
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = argv[++i]
    if (value === undefined) throw new Error(`${arg} needs a value`)
    if (arg === '--servers') options.servers = value.split(',')
    else if (arg === '--loads') options.loads = value.split(',')
    else if (arg === '--rounds') options.rounds = Number(value)
    else if (arg === '--seconds') options.seconds = Number(value)
    else if (arg === '--bytes') options.bytes = Number(value)
    else if (arg === '--stop-replica-ms') options.stopReplicaMs = Number(value)
    else if (arg === '--connections') options.connections = Number(value)
    else if (arg === '--rtt-ms') options.rttMs = Number(value)
    else if (arg === '--config') options.config = JSON.parse(value) as Record<string, unknown>
    else throw new Error(`unknown option ${arg}`)
  }
  for (const load of options.loads)
    if (!/^(seq|conc:\d+|rate:\d+)$/.test(load)) throw new Error(`unknown load ${load}`)
  return options
}

/** One Snapper node from a dist tree's bench/servers/snapper-node.js, with redisReplicaAcks 1. */
async function startNode(
  dist: string,
  redisUrl: string,
  config: Record<string, unknown>,
): Promise<{ child: ChildProcess; port: number }> {
  const server: ServerOptions = { redisUrl, secret: SECRET, index: 0, prefix: `ra${Date.now()}` }
  const child = fork(resolve(dist, 'bench/servers/snapper-node.js'), [], {
    env: {
      ...process.env,
      BENCH_SERVER: JSON.stringify(server),
      BENCH_SNAPPER_CONFIG: JSON.stringify({ redisReplicaAcks: 1, ...config }),
    },
    stdio: ['ignore', process.env.BENCH_SERVER_LOGS ? 'inherit' : 'ignore', 'inherit', 'ipc'],
  })
  const ready = await new Promise<FromChild>((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', code => reject(new Error(`node from ${dist} exited with ${code}`)))
  })
  return { child, port: ready.type === 'ready' ? ready.producerPort : 0 }
}

interface Measured {
  latency: Histogram
  answered: number
  failed: number
  seconds: number
}

async function runLoad(
  load: string,
  port: number,
  seconds: number,
  message: string,
  rateConnections = 1,
): Promise<Measured> {
  const latency = new Histogram()
  let answered = 0
  let failed = 0
  let n = 0
  const publish = async (producer: LeanProducer): Promise<void> => {
    const started = performance.now()
    const room = `room-${n++ % ROOMS}`
    try {
      await producer.request('publish', [[room, message]])
      answered++
      latency.record((performance.now() - started) * 1000)
    } catch {
      failed++
    }
  }
  const [kind, arg] = load.split(':') as [string, string | undefined]
  const connections = kind === 'conc' ? Number(arg) : kind === 'rate' ? rateConnections : 1
  // One after the other: the node refuses more than a few unauthenticated connections per address at once.
  const producers: LeanProducer[] = []
  for (let i = 0; i < connections; i++) producers.push(await LeanProducer.connect('127.0.0.1', port, SECRET))
  const started = performance.now()
  const until = started + seconds * 1000
  if (kind === 'rate') {
    const rate = Number(arg)
    const pending: Promise<void>[] = []
    let sent = 0
    while (performance.now() < until) {
      const due = Math.floor(((performance.now() - started) * rate) / 1000)
      for (; sent < due; sent++) pending.push(publish(producers[sent % producers.length]!))
      await new Promise(resolve => setTimeout(resolve, 1))
    }
    await Promise.all(pending)
  } else
    await Promise.all(
      producers.map(async producer => {
        while (performance.now() < until) await publish(producer)
      }),
    )
  const elapsed = (performance.now() - started) / 1000
  for (const producer of producers) producer.close()
  return { latency, answered, failed, seconds: elapsed }
}

/** A TCP proxy to `port` on 127.0.0.1 that delays each chunk by `delayMs`, both ways, in order. */
async function delayingProxy(port: number, delayMs: number): Promise<{ port: number; close(): void }> {
  // No Nagle: a small write held back for the peer's delayed ACK would add ~40 ms.
  const server = createServer({ noDelay: true }, client => {
    const upstream = connect({ port, host: '127.0.0.1', noDelay: true })
    const relay = (from: Socket, to: Socket): void => {
      from.on('data', chunk => void setTimeout(() => to.write(chunk), delayMs))
      from.on('error', () => to.destroy())
      from.on('close', () => void setTimeout(() => to.destroy(), delayMs))
    }
    relay(client, upstream)
    relay(upstream, client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { port: (server.address() as AddressInfo).port, close: () => server.close() }
}

/** SIGSTOP 1 s from now, SIGCONT `ms` later; resolves once it runs again. */
async function stopReplicaFor(replica: RedisServer, ms: number): Promise<void> {
  await sleep(1000)
  replica.signal('SIGSTOP')
  await sleep(ms)
  replica.signal('SIGCONT')
}

/** The highest resident set of process `pid` (VmRSS, every 50 ms) until stop(), in MB. */
function sampleRss(pid: number): { stop(): number } {
  let peak = 0
  const read = (): void => {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
    peak = Math.max(peak, kb / 1024)
  }
  read()
  const timer = setInterval(read, 50)
  return {
    stop() {
      clearInterval(timer)
      read()
      return peak
    },
  }
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2))
  const master = await startRedis(['--repl-diskless-sync-delay', '0'])
  // With --rtt-ms, the replica and the node reach the master through a proxy each (the bench's own client does not).
  const toMaster = options.rttMs > 0 ? await delayingProxy(master.port, options.rttMs / 2) : undefined
  const replicaProxy = options.rttMs > 0 ? await delayingProxy(master.port, options.rttMs / 2) : undefined
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(replicaProxy?.port ?? master.port)])
  const nodeRedisUrl = toMaster ? `redis://127.0.0.1:${toMaster.port}` : master.url
  const client = new Redis(master.port, '127.0.0.1')
  try {
    while ((await client.wait(1, 1000)) < 1) await client.set('probe', 'x')
    const message = 'x'.repeat(options.bytes)
    console.log(
      `master ${master.port}, replica ${replica.port}; ${options.seconds} s per load; added round trip ${options.rttMs} ms`,
    )
    console.log(
      'round  server                         load         p50 ms   p99 ms   max ms  answers/s  writes/WAIT  failed  peak RSS MB',
    )
    for (let round = 1; round <= options.rounds; round++)
      for (const load of options.loads)
        for (const dist of round % 2 === 1 ? options.servers : [...options.servers].reverse()) {
          const { child, port } = await startNode(dist, nodeRedisUrl, options.config)
          try {
            await runLoad('seq', port, 0.5, message) // warm-up: connections, scripts loaded
            await client.config('RESETSTAT')
            const rss = sampleRss(child.pid!)
            const stall =
              options.stopReplicaMs > 0 ? stopReplicaFor(replica, options.stopReplicaMs) : undefined
            const measured = await runLoad(load, port, options.seconds, message, options.connections).catch(
              (err: unknown) => {
                console.log(`${round} ${dist} ${load}: ${String(err)}`)
              },
            )
            await stall
            const peakRssMb = rss.stop()
            if (!measured) continue
            const { latency, answered, failed, seconds } = measured
            const stats = await client.info('commandstats')
            const waits = Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0)
            const ms = (us: number): string => (us / 1000).toFixed(2).padStart(8)
            console.log(
              [
                String(round).padEnd(5),
                dist.padEnd(30),
                load.padEnd(10),
                ms(latency.quantile(0.5)),
                ms(latency.quantile(0.99)),
                ms(latency.max),
                (answered / seconds).toFixed(0).padStart(10),
                (waits > 0 ? answered / waits : 0).toFixed(1).padStart(12),
                String(failed).padStart(7),
                peakRssMb.toFixed(0).padStart(12),
              ].join(' '),
            )
          } finally {
            child.send({ type: 'stop' })
            await new Promise(resolve => child.once('exit', resolve))
          }
          await client.flushall()
        }
  } finally {
    client.disconnect()
    await replica.stop()
    await master.stop()
    toMaster?.close()
    replicaProxy?.close()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href)
  main().catch((err: unknown) => {
    console.error(err)
    process.exit(1)
  })
