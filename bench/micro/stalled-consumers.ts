/**
 * Micro-benchmark: what consumers that never read cost their node, and whether they starve
 * the one that reads (README, Limits and bad input, "Consumers that do not read"). N websocket
 * consumers join one busy room and stop reading (their TCP socket is paused); a producer
 * publishes about 1 MB a second into the room; in `echo` mode each stalled consumer also asks
 * for echoes it never reads. One consumer keeps reading and acknowledging.
 *
 *   node dist/bench/micro/stalled-consumers.js N messageBytes room|echo seconds [totalBytes]
 *
 * The node runs in a process of its own (stalled-node.ts), the stalled consumers in another
 * (stalled-clients.ts), the reader and the producer (the SDK's, over TCP) in this one, so what
 * is printed is the node's: each second its CPU, RSS, longest event-loop delay, sessions, bytes
 * buffered towards consumers (the gauge), log reads, and the reader's delivery latency; at the
 * end, the CPU of each process, Redis commands per published message (INFO commandstats over
 * the publishing window), the node's counters, how the sessions closed, and whether the reader
 * got every message in order. STALLED_CPU_PROF=DIR writes a CPU profile of the node there.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { Producer } from '../../src/sdk/producer/index.js'
import { TEST_SECRET } from '../../test/helpers/broker.js'
import { RawConsumer } from '../../test/helpers/raw-consumer.js'
import { startBenchRedis } from '../lib/redis-server.js'
import { cpuTimes, ownCpuTimes } from '../lib/proc.js'
import type { ClientsReply, ClientsRequest } from './stalled-clients.js'
import type { NodeReply, NodeRequest, NodeSample } from './stalled-node.js'

const [count = 100, messageBytes = 1024, mode = 'room', seconds = 20, total] = process.argv
  .slice(2)
  .map((arg, i) => (i === 2 ? arg : Number(arg))) as [number?, number?, string?, number?, number?]
const ROOM = 'busy'

/** Sends `request` to a child (if any), and resolves with its next reply of type `type`. */
function ask<R extends { type: string }, T extends R['type']>(
  child: ChildProcess,
  type: T,
  request?: object,
): Promise<Extract<R, { type: T }>> {
  return new Promise(resolve => {
    const listen = (message: R): void => {
      if (message.type !== type) return
      child.off('message', listen)
      resolve(message as Extract<R, { type: T }>)
    }
    child.on('message', listen)
    if (request !== undefined) child.send(request)
  })
}
const askNode = <T extends NodeReply['type']>(type: T, request?: NodeRequest) =>
  ask<NodeReply, T>(node, type, request)
const askClients = <T extends ClientsReply['type']>(type: T, request: ClientsRequest) =>
  ask<ClientsReply, T>(clients, type, request)

const redis = await startBenchRedis()
const profileDir = process.env.STALLED_CPU_PROF
const node = fork(
  fileURLToPath(new URL('./stalled-node.js', import.meta.url)),
  [redis.url, String(total ?? '')],
  {
    execArgv: profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
  },
)
const { ports } = await askNode('ready')
const clients = fork(fileURLToPath(new URL('./stalled-clients.js', import.meta.url)), [
  String(ports.gateway),
  mode,
])

const tokens = new Tokens([TEST_SECRET])
// One user each (a userId is 24 hex digits), and one token each: a consumer's id is its user's and
// its token's `exp`, so the token a consumer connects with must be the one it is subscribed by.
const exp = Math.floor(Date.now() / 1000) + 3600
const tokenList = Array.from({ length: count + 1 }, (_, i) =>
  tokens.sign({ userId: (i + 1).toString(16).padStart(24, '0'), exp }),
)
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0)
const producer = new Producer({ id: 'stalled-bench', secret: TEST_SECRET, port: ports.producer })
await producer.connect()

await askClients('connected', { type: 'connect', tokens: tokenList.slice(0, count) })
const reader = new RawConsumer(ports.gateway, tokenList[count]!)
let readerClose = '-'
reader.socket.on('close', (code, reason) => (readerClose = `${code} ${String(reason) || '-'}`))
await reader.opened()
for (let from = 0; from <= count; from += 100) {
  const some = tokenList.slice(from, from + 100).map(token => {
    const verified = tokens.verifyConsumer(token)
    return verified.ok ? producer.subscribe(ROOM, consumerIdOf(verified.claims)) : undefined
  })
  await Promise.all(some)
}
await askClients('stalled', { type: 'stall' })

let latencies: number[] = []
let acked = 0
let received = 0
/** Messages the reader got out of order (each carries its publish number). */
let outOfOrder = 0
reader.socket.on('message', () => {
  while (acked < reader.batches.length) {
    const batch = reader.batches[acked++]!
    for (const message of batch.params) {
      latencies.push(Date.now() - Number(message.slice(0, 13)))
      if (Number(message.slice(14, 22)) !== received) outOfOrder++
      received++
    }
    reader.ack(batch.id)
  }
})
// About 1 MB a second into the room, in 10 publishes: `<ms>:<publish number, 8 digits>:<padding>`.
const perPublish = Math.max(1, Math.round(2 ** 20 / 10 / messageBytes))
const padding = 'x'.repeat(Math.max(0, messageBytes - 23))
let published = 0
let publishFailures = 0
await redis.resetStats()
const publisher = setInterval(() => {
  const messages = Array.from(
    { length: perPublish },
    () => [ROOM, `${Date.now()}:${String(published++).padStart(8, '0')}:${padding}`] as const,
  )
  producer.publish(messages).catch(() => publishFailures++)
}, 100)
const started = Date.now()
const nodeCpuAtStart = cpuTimes(node.pid!)
const clientsCpuAtStart = cpuTimes(clients.pid!)
const clientCpuAtStart = ownCpuTimes()
console.log(`N=${count} message=${messageBytes} B mode=${mode} total=${total ?? 'default'}`)
console.log(
  's\tnode CPU %\trss MB\tloop max ms\tsessions\tbuffered MB\tlog reads\tp50 ms\tmax ms\treceived/published',
)
let previousCpu = nodeCpuAtStart
let previousAt = started
let previousLogReads = 0
let last: NodeSample | undefined
while (Date.now() - started < seconds * 1000) {
  await new Promise(resolve => setTimeout(resolve, 1000))
  const { sample } = await askNode('sample', { type: 'sample' })
  last = sample
  const cpu = cpuTimes(node.pid!)
  const now = Date.now()
  const logReads = sample.metrics.snapper_log_reads_total ?? 0
  latencies.sort((a, b) => a - b)
  console.log(
    [
      ((now - started) / 1000).toFixed(0),
      (
        (100 * (cpu.user + cpu.system - previousCpu.user - previousCpu.system)) /
        ((now - previousAt) / 1000)
      ).toFixed(0),
      mb(sample.rssBytes),
      sample.loopDelayMaxMs.toFixed(0),
      sample.sessions,
      mb(sample.bufferedBytes),
      logReads - previousLogReads,
      latencies[latencies.length >> 1] ?? '-',
      latencies.at(-1) ?? '-',
      `${received}/${published}`,
    ].join('\t'),
  )
  latencies = []
  previousCpu = cpu
  previousAt = now
  previousLogReads = logReads
}
clearInterval(publisher)
const elapsedSec = (Date.now() - started) / 1000
const calls = await redis.commandCalls()
const nodeCpu = cpuTimes(node.pid!)
const clientsCpu = cpuTimes(clients.pid!)
const clientCpu = ownCpuTimes()
const cpuPercent = (end: { user: number; system: number }, start: { user: number; system: number }): string =>
  ((100 * (end.user + end.system - start.user - start.system)) / elapsedSec).toFixed(0)
const perMessage = [...calls]
  .filter(([, n]) => n > 0)
  .sort((a, b) => b[1] - a[1])
  .map(([command, n]) => `${command} ${(n / Math.max(1, published)).toFixed(2)}`)
console.log(
  `CPU: node ${cpuPercent(nodeCpu, nodeCpuAtStart)} %, stalled consumers ${cpuPercent(clientsCpu, clientsCpuAtStart)} %, ` +
    `reader and producer ${cpuPercent(clientCpu, clientCpuAtStart)} %`,
)
console.log(
  `Redis calls per published message: ${perMessage.join(', ')} (${published} published, ${publishFailures} publishes failed)`,
)
console.log(
  `node counters: ${Object.entries(last?.metrics ?? {})
    .map(([name, value]) => `${name} ${value}`)
    .join(', ')}`,
)
console.log(
  `reader: ${received}/${published}, ${outOfOrder} out of order, closed: ${reader.closed ? readerClose : 'no'}`,
)
const report = await askClients('report', { type: 'report' })
console.log(
  `stalled closed: ${report.closed}/${count}; closes: ${
    Object.entries(report.closes)
      .map(([why, n]) => `${why} ×${n}`)
      .join(', ') || 'none'
  }`,
)
reader.socket.terminate()
clients.send({ type: 'stop' } satisfies ClientsRequest)
await producer.close()
await Promise.all([askNode('stopped', { type: 'stop' }), once(clients, 'exit')])
await once(node, 'exit')
await redis.stop()
