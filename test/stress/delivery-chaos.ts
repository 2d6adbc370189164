/**
 * `node dist/test/stress/delivery-chaos.js [seed] [seconds]`
 *
 * A seeded chaos run of the core promise: every message a producer got a
 * success answer for reaches every consumer that was in its room for the
 * whole publish, exactly once, in publish order per room. NODES (3) real
 * `snapper start --workers 1` processes on one redis-server (CLUSTER=1: a
 * Redis Cluster of 3 masters with a replica each), snapper-consumer@1.3.6
 * clients (USERS users with two consumers each, in their user rooms; every
 * other one websocket only) that reconnect by themselves, to any node up,
 * and snapper-producer@2.1.1 connections publishing steadily to every room
 * (each room's publishes one at a time). Every 1-3 s the seed draws a fault:
 * a node SIGKILLed and started again, a node SIGSTOPped 2-8 s, Redis
 * `CLIENT PAUSE` 1-3 s, `CLIENT KILL TYPE pubsub` or `TYPE normal`, a
 * consumer's socket destroyed, joins and leaves of SHARED (3) rooms. The
 * seed fixes the choices, not the timing. Not run by `npm test`
 * (docs/RELIABILITY.md, Chaos runs). After a quiet period it reports, with
 * the fault timeline around each: lost (owed, never received), duplicated,
 * reordered and unexpected (received from a room left before the publish)
 * messages. A duplicate whose first copy came from a node SIGKILLed or
 * SIGSTOPped within a cursor flush after it (plus any Redis pause meanwhile),
 * the copy after that, is counted apart: README "After a node crash". Exit
 * code 1 on any violation; VERBOSE=1 prints the fault timeline as it goes.
 *
 * Its parts, in the order of the data (chaos/):
 *
 *   nodes.ts (Redis, the nodes) ─▶ consumers.ts (open, follow the nodes up)
 *     ─▶ load.ts (publishes, joins, leaves) + faults.ts (drawn from the seed, on timeline.ts)
 *     ─▶ check.ts (owed? lost, unexpected, duplicated, reordered) ─▶ report.ts
 */
import { uniquePrefix } from '../helpers/redis.js'
import { seededRandom } from '../helpers/seeded-random.js'
import { now, sleep } from './chaos/clock.js'
import { followNodesUp, openConsumers } from './chaos/consumers.js'
import { awaitOwed, checkDeliveries } from './chaos/check.js'
import { injectFaults } from './chaos/faults.js'
import { Load } from './chaos/load.js'
import { Nodes, startChaosRedis } from './chaos/nodes.js'
import { printReport, Violations } from './chaos/report.js'
import { Timeline } from './chaos/timeline.js'

const seed = Number(process.argv[2] ?? 1)
const SECONDS = Number(process.argv[3] ?? 60)
const NODES = Number(process.env.NODES ?? 3)
const USERS = Number(process.env.USERS ?? 4)
const SHARED = Number(process.env.SHARED ?? 3)
const IS_CLUSTER = process.env.CLUSTER === '1'

async function main(): Promise<void> {
  const prefix = uniquePrefix()
  const redis = await startChaosRedis(IS_CLUSTER)
  const timeline = new Timeline()
  const nodes = new Nodes(redis, prefix, timeline)
  await nodes.startAll(NODES)
  const consumers = await openConsumers(nodes, seed, USERS)
  const stopFollowing = followNodesUp(consumers, nodes, seededRandom(seed * 7919))

  const load = new Load(nodes)
  const sharedRooms = Array.from({ length: SHARED }, (_, i) => `shared${i}`)
  const setupDraw = seededRandom(seed * 31)
  for (const consumer of consumers)
    for (const room of sharedRooms)
      if (setupDraw() < 0.5) await load.membershipOp(consumer, room, 'join', setupDraw)

  const rooms = [...new Set(consumers.map(c => `user${c.userId}`)), ...sharedRooms]
  const loops = rooms.map((room, i) =>
    load.publishLoop(room, room.startsWith('user') ? `u${i}` : room, seededRandom(seed * 1000 + i)),
  )
  const faultCounts = await injectFaults(seed, SECONDS, {
    nodes,
    admins: redis.admins,
    consumers,
    sharedRooms,
    load,
    timeline,
  })

  // Quiet: faults over, every node back, every consumer open again, the publishers stopped.
  load.stop()
  await Promise.all(loops)
  const violations = new Violations(timeline)
  const quietUntil = now() + 30_000
  while (consumers.some(c => !c.client.connected) && now() < quietUntil) await sleep(100)
  for (const consumer of consumers)
    if (!consumer.client.connected) violations.add(`${consumer.name} not connected at the end`, [])
  await awaitOwed(consumers, load)
  stopFollowing()

  const { checked, documented } = checkDeliveries(consumers, load, nodes, timeline, violations)
  printReport(documented, {
    seed,
    seconds: SECONDS,
    cluster: IS_CLUSTER,
    counts: { ...load.counts, ...faultCounts },
    deliveriesChecked: checked,
    received: consumers.reduce((sum, c) => sum + c.received.length, 0),
    opens: consumers.reduce((sum, c) => sum + c.opens, 0),
    duplicatesAfterCrash: documented.length,
    violations: violations.list.length,
  })

  for (const consumer of consumers) consumer.close()
  await nodes.stop()
  await redis.stop()
  process.exit(violations.list.length > 0 ? 1 : 0)
}

process.on('unhandledRejection', err => {
  console.error('unhandled rejection', err)
})
main().catch(err => {
  console.error(err)
  process.exit(2)
})
