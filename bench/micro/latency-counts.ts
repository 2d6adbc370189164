/**
 * Micro-benchmark: one ack latency observation, counted in the node's own
 * buckets (LatencyCounts, read by /metrics at scrape time) versus a
 * prom-client Histogram's observe. `node dist/bench/micro/latency-counts.js`
 */
import { Histogram } from 'prom-client'
import { ACK_LATENCY_BUCKETS_SEC, LatencyCounts } from '../../src/broker/latency.js'

const counts = new LatencyCounts(ACK_LATENCY_BUCKETS_SEC)
const histogram = new Histogram({
  name: 'ack',
  help: 'ack',
  registers: [],
  buckets: [...ACK_LATENCY_BUCKETS_SEC],
})

function rate(label: string, observe: (latencyMs: number) => void): void {
  for (let i = 0; i < 200_000; i++) observe(i % 100) // warm up the JIT
  const n = 2_000_000
  const start = process.hrtime.bigint()
  for (let i = 0; i < n; i++) observe(i % 100)
  const ns = Number(process.hrtime.bigint() - start)
  process.stdout.write(`${label.padEnd(24)} ${(ns / n).toFixed(0).padStart(5)} ns/observation\n`)
}

rate('LatencyCounts.add', latencyMs => counts.add(latencyMs))
rate('prom-client observe', latencyMs => histogram.observe(latencyMs / 1000))
