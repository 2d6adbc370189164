/**
 * Micro-benchmark: what consumers that never read cost their node, and whether they starve
 * the one that reads (README, Limits and bad input, "Consumers that do not read"). N websocket
 * consumers join one busy room and stop reading (their TCP socket is paused); a producer
 * publishes about 1 MB a second into the room; in `echo` mode each stalled consumer also asks
 * for echoes it never reads. One consumer keeps reading and acknowledging.
 *
 *   node dist/bench/micro/stalled-consumers.js N messageBytes room|echo seconds [totalBytes]
 *
 * The node runs in a process of its own (stalled-node.ts), the clients and the producer (the
 * SDK's, over TCP) in this one, so what is printed is the node's: each second its CPU, RSS,
 * longest event-loop delay, sessions, bytes buffered towards consumers (the gauge), log reads,
 * and the reader's delivery latency; at the end, Redis commands per published message (INFO
 * commandstats over the publishing window), how the sessions closed, and whether the reader
 * got every message in order. STALLED_CPU_PROF=DIR writes a CPU profile of the node there.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { Producer } from '../../src/sdk/producer/index.js'
import { TEST_SECRET } from '../../test/helpers/broker.js'
import { RawConsumer } from '../../test/helpers/raw-consumer.js'
import { startBenchRedis } from '../lib/redis-server.js'
import { cpuTimes, ownCpuTimes } from '../lib/proc.js'
import type { NodeReply, NodeRequest, NodeSample } from './stalled-node.js'

const [count = 100, messageBytes = 1024, mode = 'room', seconds = 20, total] = process.argv
  .slice(2)
  .map((arg, i) => (i === 2 ? arg : Number(arg))) as [number?, number?, string?, number?, number?]
const ROOM = 'busy'
const redis = await startBenchRedis()
const profileDir = process.env.STALLED_CPU_PROF
const child = fork(
  fileURLToPath(new URL('./stalled-node.js', import.meta.url)),
  [redis.url, String(total ?? '')],
  {
    execArgv: profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`],
  },
)
/** The node's next reply of this type. */
function reply<T extends NodeReply['type']>(type: T): Promise<Extract<NodeReply, { type: T }>> {
  return new Promise(resolve => {
    const listen = (message: NodeReply): void => {
      if (message.type !== type) return
      child.off('message', listen)
      resolve(message as Extract<NodeReply, { type: T }>)
    }
    child.on('message', listen)
  })
}
const ask = async (request: NodeRequest & { type: 'sample' }): Promise<NodeSample> => {
  const answer = reply('sample')
  child.send(request)
  return (await answer).sample
}
const { ports } = await reply('ready')

const tokens = new Tokens([TEST_SECRET])
// One user each (a userId is 24 hex digits), and one token each: a consumer's id is its user's and
// its token's `exp`, so the token a consumer connects with must be the one it is subscribed by.
const exp = Math.floor(Date.now() / 1000) + 3600
const tokenList = Array.from({ length: count + 1 }, (_, i) =>
  tokens.sign({ userId: (i + 1).toString(16).padStart(24, '0'), exp }),
)
const tokenOf = (i: number): string => tokenList[i]!
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0)
const producer = new Producer({ id: 'stalled-bench', secret: TEST_SECRET, port: ports.producer })
await producer.connect()

/** How the consumers' sockets closed, by websocket close code and reason. */
const closes = new Map<string, number>()
const connect = (i: number): RawConsumer => {
  const consumer = new RawConsumer(ports.gateway, tokenOf(i))
  consumer.socket.on('close', (code, reason) => {
    const key = `${code} ${String(reason) || '-'}${i === count ? ' (the reader)' : ''}`
    closes.set(key, (closes.get(key) ?? 0) + 1)
  })
  return consumer
}
const stalled: RawConsumer[] = []
for (let from = 0; from < count; from += 100) {
  const some = Array.from({ length: Math.min(100, count - from) }, (_, i) => connect(from + i))
  await Promise.all(some.map(consumer => consumer.opened()))
  stalled.push(...some)
}
const reader = connect(count)
await reader.opened()
for (let from = 0; from <= count; from += 100) {
  const some = Array.from({ length: Math.min(100, count + 1 - from) }, (_, i) => {
    const token = tokens.verifyConsumer(tokenOf(from + i))
    return token.ok ? producer.subscribe(ROOM, consumerIdOf(token.claims)) : undefined
  })
  await Promise.all(some)
}
for (const consumer of stalled) (consumer.socket as unknown as { _socket: { pause(): void } })._socket.pause()
// Echo mode: 200 KB of echo requests a second per consumer, within consumerMaxInputBytesPerSec.
const params = ['y'.repeat(4000)]
const asker = setInterval(() => {
  if (mode !== 'echo') return
  for (const consumer of stalled)
    if (!consumer.closed)
      for (let i = 0; i < 50; i++) consumer.send({ jsonrpc: '2.0', id: i + 1, method: 'echo', params })
}, 1000)

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
const nodeCpuAtStart = cpuTimes(child.pid!)
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
  const sample = (last = await ask({ type: 'sample' }))
  const cpu = cpuTimes(child.pid!)
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
clearInterval(asker)
const elapsedSec = (Date.now() - started) / 1000
const calls = await redis.commandCalls()
const nodeCpu = cpuTimes(child.pid!)
const clientCpu = ownCpuTimes()
const cpuPercent = (end: { user: number; system: number }, start: { user: number; system: number }): string =>
  ((100 * (end.user + end.system - start.user - start.system)) / elapsedSec).toFixed(0)
const perMessage = [...calls]
  .filter(([, n]) => n > 0)
  .sort((a, b) => b[1] - a[1])
  .map(([command, n]) => `${command} ${(n / Math.max(1, published)).toFixed(2)}`)
console.log(
  `node CPU ${cpuPercent(nodeCpu, nodeCpuAtStart)} %, this process (clients, producer) ${cpuPercent(clientCpu, clientCpuAtStart)} %`,
)
console.log(
  `Redis calls per published message: ${perMessage.join(', ')} (${published} published, ${publishFailures} publishes failed)`,
)
console.log(
  `node counters: ${Object.entries(last?.metrics ?? {})
    .map(([name, value]) => `${name} ${value}`)
    .join(', ')}`,
)
console.log(`reader: ${received}/${published} in order but ${outOfOrder}, closed: ${reader.closed}`)
console.log(
  `stalled closed: ${stalled.filter(c => c.closed).length}/${count}; closes: ${[...closes].map(([why, n]) => `${why} ×${n}`).join(', ') || 'none'}`,
)
for (const consumer of [...stalled, reader]) consumer.socket.terminate()
await producer.close()
const stopped = reply('stopped')
child.send({ type: 'stop' } satisfies NodeRequest)
await stopped
await once(child, 'exit')
await redis.stop()
