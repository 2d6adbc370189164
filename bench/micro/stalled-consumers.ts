/**
 * Micro-benchmark: what consumers that never read cost their node (the reason for
 * `consumerMaxBackpressureBytesTotal`, README, Limits and bad input). N websocket
 * consumers join one busy room and stop reading (their TCP socket is paused); a
 * producer publishes into the room; in `echo` mode each stalled consumer also asks
 * for echoes it never reads. One consumer keeps reading and acknowledging.
 *
 *   node dist/bench/micro/stalled-consumers.js N messageBytes room|echo seconds [totalBytes]
 *
 * Prints, each second: the node's RSS, heap, external memory, its sessions, the
 * bytes buffered towards consumers (the gauge), and the reader's delivery latency.
 */
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { TEST_SECRET, testConfig } from '../../test/helpers/broker.js'
import { RawConsumer } from '../../test/helpers/raw-consumer.js'
import { startRedis } from '../../test/helpers/redis.js'

const [count = 100, messageBytes = 1024, mode = 'room', seconds = 20, total] = process.argv
  .slice(2)
  .map((arg, i) => (i === 2 ? arg : Number(arg))) as [number?, number?, string?, number?, number?]
const server = await startRedis()
const tokens = new Tokens([TEST_SECRET])
const node = await startNode(
  testConfig(server.url, total === undefined ? {} : ({ consumerMaxBackpressureBytesTotal: total } as object)),
  silentLogger,
  { gateway: 0, producer: 0 },
)
const api = node.core.producerApi
const userOf = (i: number): string => (i + 1).toString(16).padStart(24, 'b')
const tokenOf = (i: number): string =>
  tokens.sign({ userId: userOf(i), exp: Math.floor(Date.now() / 1000) + 3600 })
const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(0)

const stalled: RawConsumer[] = []
for (let from = 0; from < count; from += 100) {
  const some = Array.from(
    { length: Math.min(100, count - from) },
    (_, i) => new RawConsumer(node.ports.gateway, tokenOf(from + i)),
  )
  await Promise.all(some.map(consumer => consumer.opened()))
  stalled.push(...some)
}
const reader = new RawConsumer(node.ports.gateway, tokenOf(count))
await reader.opened()
for (let i = 0; i <= count; i++) {
  const token = tokens.verifyConsumer(tokenOf(i))
  if (token.ok) await api.subscribe('busy', consumerIdOf(token.claims))
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
reader.socket.on('message', () => {
  while (acked < reader.batches.length) {
    const batch = reader.batches[acked++]!
    for (const message of batch.params) latencies.push(Date.now() - Number(message.slice(0, 13)))
    received += batch.params.length
    reader.ack(batch.id)
  }
})
// About 1 MB a second into the room, in 10 publishes.
const perPublish = Math.max(1, Math.round(2 ** 20 / 10 / messageBytes))
const padding = 'x'.repeat(Math.max(0, messageBytes - 14))
let published = 0
const publisher = setInterval(() => {
  const messages = Array.from({ length: perPublish }, () => ['busy', `${Date.now()}:${padding}`] as const)
  published += messages.length
  void api.publish(messages)
}, 100)
const started = Date.now()
console.log(`N=${count} message=${messageBytes} B mode=${mode} total=${total ?? 'none'}`)
console.log('s\trss MB\theap MB\text MB\tsessions\tbuffered MB\tp50 ms\tmax ms\treceived/published')
await new Promise<void>(resolve => {
  const sampler = setInterval(() => {
    const memory = process.memoryUsage()
    latencies.sort((a, b) => a - b)
    const buffered = (node.gateway.engine as { bufferedBytes?: number }).bufferedBytes
    console.log(
      [
        ((Date.now() - started) / 1000).toFixed(0),
        mb(memory.rss),
        mb(memory.heapUsed),
        mb(memory.external),
        node.gateway.engine.sessions.size,
        buffered === undefined ? '-' : mb(buffered),
        latencies[latencies.length >> 1] ?? '-',
        latencies.at(-1) ?? '-',
        `${received}/${published}`,
      ].join('\t'),
    )
    latencies = []
    if (Date.now() - started < seconds * 1000) return
    clearInterval(sampler)
    resolve()
  }, 1000)
})
clearInterval(publisher)
clearInterval(asker)
console.log(`reader closed: ${reader.closed}; stalled closed: ${stalled.filter(c => c.closed).length}`)
for (const consumer of [...stalled, reader]) consumer.socket.terminate()
await node.stop()
await server.stop()
