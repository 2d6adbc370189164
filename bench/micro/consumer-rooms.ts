/**
 * Micro-benchmark: what one handshake of a consumer in N rooms costs its node
 * (the reason for `maxRoomsPerConsumer`: the handshake reads every room of the
 * consumer's record, and the node follows each). The rooms are written
 * straight into the record, past the bound, then one consumer connects.
 *
 *   node --expose-gc dist/bench/micro/consumer-rooms.js [N ...]   (default 1 1000 10000 100000)
 *
 * Prints the handshake's time (request to open packet) and the node's heap
 * after it, after a GC, less the heap before it.
 */
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { startNode } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { TEST_SECRET, testConfig } from '../../test/helpers/broker.js'
import { RawConsumer } from '../../test/helpers/raw-consumer.js'
import { startRedis } from '../../test/helpers/redis.js'

const counts = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [1, 1000, 10_000, 100_000]
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) {
  console.error('run with node --expose-gc')
  process.exit(1)
}
const server = await startRedis()
const redis = server.client()
const tokens = new Tokens([TEST_SECRET])
try {
  for (const [i, count] of counts.entries()) {
    const node = await startNode(testConfig(server.url, { maxRoomsPerConsumer: 2 ** 31 - 1 }), silentLogger, {
      gateway: 0,
      producer: 0,
    })
    const claim = {
      userId: 'a' + (i + 1).toString(16).padStart(23, '0'),
      exp: Math.floor(Date.now() / 1000) + 3600,
    }
    const record = node.core.keys.consumer(consumerIdOf(claim)).rooms
    for (let from = 0; from < count; from += 10_000) {
      const fields: string[] = []
      for (let room = from; room < Math.min(count, from + 10_000); room++)
        fields.push(`project/${room}`, '0-0')
      await redis.hset(record, ...fields)
    }
    gc()
    const heapBefore = process.memoryUsage().heapUsed
    const startedAt = performance.now()
    const consumer = new RawConsumer(node.ports.gateway, tokens.sign(claim))
    await consumer.opened()
    const handshakeMs = performance.now() - startedAt
    gc()
    const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6
    console.log(
      `${String(count).padStart(7)} rooms: handshake ${handshakeMs.toFixed(0).padStart(5)} ms, node heap +${heapMb.toFixed(1)} MB`,
    )
    consumer.socket.close()
    await node.stop()
  }
} finally {
  redis.disconnect()
  await server.stop()
}
