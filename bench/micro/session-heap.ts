/**
 * Micro-benchmark: the JS heap an idle consumer session holds on its node (README, Benchmarks:
 * what a connect storm's scavenges copy is what each session keeps). A node runs in this process
 * on a real Redis; N websocket consumers connect from a process of their own (stalled-clients.ts)
 * and stay idle, each in R rooms (written into its record before it connects; 0 by default).
 *
 *   node --expose-gc dist/bench/micro/session-heap.js [N] [R]      (default 2200 0)
 *
 * The first 200 consumers are a warm-up (compiled code, shared maps, the rooms' own state); a heap
 * snapshot after them and one after the other N - 200 are written to a temporary directory, and
 * only then read. Prints the bytes each of those sessions added, in total and by constructor, and
 * for the objects that are new in the second snapshot, who holds them (the holder's class and field,
 * through containers: `(array) <- Map.table <- ConsumerLink.#rooms`). Deterministic to a few bytes.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeHeapSnapshot } from 'node:v8'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { TEST_SECRET, testConfig } from '../../test/helpers/broker.js'
import { startRedis } from '../../test/helpers/redis.js'
import { HeapSnapshot, labelGrowth, newNodesByHolders, type Tally } from '../lib/heap-snapshot.js'
import type { ClientsReply, ClientsRequest } from './stalled-clients.js'

const [count = 2200, roomsEach = 0] = process.argv.slice(2).map(Number)
const WARM_UP = 200
const gc = (globalThis as { gc?: () => void }).gc
if (!gc || count <= WARM_UP) {
  console.error('run with node --expose-gc, N > 200')
  process.exit(1)
}

const server = await startRedis()
const redis = server.client()
const node = await startNode(testConfig(server.url), silentLogger, { gateway: 0, producer: 0 })
const tokens = new Tokens([TEST_SECRET])
const exp = Math.floor(Date.now() / 1000) + 3600
const claims = Array.from({ length: count }, (_, i) => ({
  userId: (i + 1).toString(16).padStart(24, '0'),
  exp,
}))
if (roomsEach > 0)
  for (const claim of claims) {
    const fields: string[] = []
    for (let room = 0; room < roomsEach; room++) fields.push(`room/${room}`, '0-0')
    await redis.hset(node.core.keys.consumer(consumerIdOf(claim)).rooms, ...fields)
  }
// Flat strings from the start: a signed token is a concatenation, which sending it to the consumers'
// process would flatten between the snapshots, 176 B a session that is this script's, not the node's.
const signed = JSON.parse(JSON.stringify(claims.map(claim => tokens.sign(claim)))) as string[]

const clients = fork(fileURLToPath(new URL('./stalled-clients.js', import.meta.url)), [
  String(node.ports.gateway),
])
/** Asks the consumers' process to connect `some`, and resolves when all of them have their open packet. */
function connect(child: ChildProcess, some: readonly string[]): Promise<void> {
  return new Promise(resolve => {
    const listen = (reply: ClientsReply): void => {
      if (reply.type !== 'connected') return
      child.off('message', listen)
      resolve()
    }
    child.on('message', listen)
    child.send({ type: 'connect', tokens: some } satisfies ClientsRequest)
  })
}
const settle = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const directory = mkdtempSync(join(tmpdir(), 'session-heap-'))
function snapshot(name: string): string {
  gc!()
  gc!()
  return writeHeapSnapshot(join(directory, name))
}

await connect(clients, signed.slice(0, WARM_UP))
await settle(1500)
const beforeFile = snapshot('before.heapsnapshot')
await connect(clients, signed.slice(WARM_UP))
await settle(3000)
const sessions = node.gateway.engine.sessions.size
const afterFile = snapshot('after.heapsnapshot')
clients.send({ type: 'stop' } satisfies ClientsRequest)
await node.stop()
await server.stop()

// Both snapshots are on disk: what follows allocates freely.
const measured = count - WARM_UP
const before = new HeapSnapshot(beforeFile)
const after = new HeapSnapshot(afterFile)
const growth = labelGrowth(before, after)
const holders = newNodesByHolders(before, after)
rmSync(directory, { recursive: true })

const total = [...growth.values()].reduce((sum, tally) => sum + tally.bytes, 0)
// Code compiled after the warm-up is not the sessions' but varies from run to run: shown apart.
const code = growth.get('(code)')?.bytes ?? 0
const row = (tally: Tally, label: string): string =>
  `${(tally.bytes / measured).toFixed(1).padStart(8)} B ${(tally.count / measured).toFixed(2).padStart(7)}  ${label}`
const largest = (tallies: Map<string, Tally>, limit: number): [string, Tally][] =>
  [...tallies].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, limit)
console.log(
  `${sessions} sessions (${measured} measured, ${roomsEach} rooms each): ${((total - code) / measured).toFixed(0)} bytes of JS heap a session, and ${(code / measured).toFixed(0)} of compiled code`,
)
console.log('\nby constructor (bytes and objects a session)')
for (const [label, tally] of largest(growth, 40))
  if (label !== '(code)' && tally.bytes / measured >= 8) console.log(row(tally, label))
console.log('\nnew objects by holder (bytes and objects a session)')
for (const [path, tally] of largest(holders, 80))
  if (tally.bytes / measured >= 8) console.log(row(tally, path))
