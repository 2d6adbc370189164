/**
 * Micro-benchmark: reading the batch id out of a consumer's ack, with
 * JSON.parse (and the checks that follow it) versus the exact-form fast path
 * the gateway tries first (`plainAckId`). `node dist/bench/micro/ack-parse.js`
 */
import { plainAckId } from '../../src/gateway/consumer.js'

const acks = Array.from(
  { length: 1024 },
  (_, i) => `{"jsonrpc":"2.0","id":"Xy3_ab:${i.toString(36)}","result":"OK"}`,
)

function rate(label: string, read: (text: string) => unknown): void {
  let sink = 0
  for (let i = 0; i < 200_000; i++) if (read(acks[i & 1023]!) !== undefined) sink++ // warm up the JIT
  const n = 2_000_000
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) if (read(acks[i & 1023]!) !== undefined) sink++
  const ns = Number(process.hrtime.bigint() - start)
  process.stdout.write(
    `${label.padEnd(24)} ${(ns / n).toFixed(0).padStart(5)} ns/ack  (${sink > 0 ? 'ok' : 'none'})\n`,
  )
}

rate('JSON.parse + checks', text => {
  const value = JSON.parse(text) as { jsonrpc?: unknown; id?: unknown; result?: unknown; method?: unknown }
  return value.jsonrpc === '2.0' &&
    typeof value.id === 'string' &&
    value.method === undefined &&
    'result' in value
    ? value.id
    : undefined
})
rate('plainAckId', plainAckId)
