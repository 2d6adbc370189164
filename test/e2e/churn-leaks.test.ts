/**
 * A node under churn leaks nothing: a short run of test/stress/churn-soak.ts
 * (test/helpers/churn.ts). After ~15 s of clients of every kind coming and
 * going, cleanly and not, and past every timeout of the churn's config, every
 * per-client structure of the node is empty, the handles keeping the event
 * loop alive are back to what they were, no key without a TTL was added to
 * Redis, and the heap grew by less than 8 MB. Alone in its file and serial:
 * the handle count and the heap are this process's.
 */
import test from 'ava'
import { churn, churnConfig, leaksBetween, readNode, SETTLE_MS, startChurnNode } from '../helpers/churn.js'
import { eventually, pause } from '../helpers/eventually.js'
import { startRedis } from '../helpers/redis.js'

const MAX_HEAP_GROWTH_BYTES = 8 * 1048576

test.serial('after churn, a node holds nothing of its gone clients', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const config = churnConfig(redis.url)
  const running = await startChurnNode(config)
  t.teardown(() => running.stop())
  const client = redis.client()
  const read = () => readNode(running, client, config.redisPrefix)
  // What the first clients load once (code, caches, pools) is not a leak.
  await churn(running, 1_000_001, 2, 4)
  await pause(SETTLE_MS)
  const before = await read()
  const counts = await churn(running, 1, 15, 4)
  t.log(JSON.stringify(counts))
  // Past every timeout, what is still held is a leak; a loaded machine may take longer than SETTLE_MS.
  await pause(SETTLE_MS)
  let leaks: string[] = []
  const after = await eventually(
    async () => {
      const reading = await read()
      leaks = leaksBetween(before, reading, MAX_HEAP_GROWTH_BYTES)
      return leaks.length === 0 && reading
    },
    { timeoutMs: 20_000, everyMs: 1000, what: () => `no leak; still: ${leaks.join(', ')}` },
  )
  t.deepEqual(leaksBetween(before, after, MAX_HEAP_GROWTH_BYTES), [])
  t.log(
    `heap ${before.heapBytes} → ${after.heapBytes} bytes, Redis keys ${before.keys.total} → ${after.keys.total}`,
  )
})
