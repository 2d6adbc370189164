/**
 * `node dist/test/stress/churn-soak.js [seed] [seconds]`
 *
 * Does a node leak under churn? One node (in this process, with its admin
 * app) on its own redis-server, and `seconds` of seeded churn
 * (test/helpers/churn.ts: consumers of every kind opening, receiving, acking
 * and closing cleanly or cut, abandoned polling sessions, reconnect loops,
 * bad tokens, handshakes from 127.0.0.x, producers that publish and go or
 * never authenticate, admin requests good and bad). Then every client is
 * gone; past every timeout of the churn's config it reads the node again and
 * compares with what it read before the churn: each per-client structure
 * (must be empty), handles keeping the event loop alive (by type), the heap
 * after full collections, and the Redis keys (all, and those without a TTL).
 * Prints them all; exits 1 on a leak. WORKERS (6) sets the concurrency;
 * HEAP_GROWTH_MB (8) the heap growth allowed; HEAP_SNAPSHOTS=dir writes a
 * heap snapshot there at each reading (before.heapsnapshot, after…), to see
 * what grew (Chrome DevTools, Memory, Comparison). Not run by `npm test`:
 * test/e2e/churn-leaks.test.ts runs a short one.
 */
import {
  churn,
  churnConfig,
  leaksBetween,
  mb,
  readNode,
  SETTLE_MS,
  startChurnNode,
} from '../helpers/churn.js'
import { join } from 'node:path'
import { writeHeapSnapshot } from 'node:v8'
import { pause } from '../helpers/eventually.js'
import { startRedis } from '../helpers/redis.js'

const seed = Number(process.argv[2] ?? 1)
const seconds = Number(process.argv[3] ?? 60)
const workers = Number(process.env.WORKERS ?? 6)
const maxHeapGrowthBytes = Number(process.env.HEAP_GROWTH_MB ?? 8) * 1048576

async function main(): Promise<void> {
  const redis = await startRedis()
  const config = churnConfig(redis.url)
  const running = await startChurnNode(config)
  const client = redis.client()
  const snapshots = process.env.HEAP_SNAPSHOTS
  const read = async (name: string) => {
    const reading = await readNode(running, client, config.redisPrefix)
    if (snapshots) writeHeapSnapshot(join(snapshots, `${name}.heapsnapshot`))
    return reading
  }
  // A warm-up churn first: what the first clients load once (code, caches, pools) is not a leak.
  await churn(running, seed + 1_000_000, 2, workers)
  await pause(SETTLE_MS)
  const before = await read('before')
  const began = Date.now()
  const counts = await churn(running, seed, seconds, workers)
  const churnMs = Date.now() - began
  await pause(SETTLE_MS)
  const after = await read('after')
  const leaks = leaksBetween(before, after, maxHeapGrowthBytes)
  const summary = (reading: typeof before) => ({
    heapMb: mb(reading.heapBytes),
    structures: reading.structures,
    handles: reading.handles,
    redisKeys: { total: reading.keys.total, withoutTtl: reading.keys.withoutTtl.length },
  })
  console.log(
    JSON.stringify(
      { seed, seconds, workers, churnMs, counts, before: summary(before), after: summary(after), leaks },
      null,
      2,
    ),
  )
  await running.stop()
  await redis.stop()
  process.exit(leaks.length > 0 ? 1 : 0)
}

main().catch(err => {
  console.error(err)
  process.exit(2)
})
