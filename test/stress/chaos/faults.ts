import type { Redis } from 'ioredis'
import { seededRandom } from '../../helpers/seeded-random.js'
import { between, now, pick, sleep } from './clock.js'
import type { ChaosConsumer } from './consumers.js'
import type { Load } from './load.js'
import type { Nodes } from './nodes.js'
import type { Timeline } from './timeline.js'

export interface FaultTargets {
  readonly nodes: Nodes
  /** A connection to each Redis server. */
  readonly admins: readonly Redis[]
  readonly consumers: readonly ChaosConsumer[]
  readonly sharedRooms: readonly string[]
  /** Joins and leaves go through it, so that the check knows when they were answered. */
  readonly load: Load
  readonly timeline: Timeline
}

/**
 * Draws a fault from the seed every 1-3 s for `seconds`, and recovers from
 * each (restart, SIGCONT) in the background; resolves once every node is
 * back. The seed fixes the choices, not the timing. The counts, by fault.
 */
export async function injectFaults(seed: number, seconds: number, targets: FaultTargets) {
  const { nodes, admins, consumers, sharedRooms, load, timeline } = targets
  const counts = { kill: 0, stop: 0, pause: 0, killPubsub: 0, killNormal: 0, cut: 0, membership: 0 }
  const draw = seededRandom(seed)
  const background: Promise<unknown>[] = []
  const faultsUntil = now() + seconds * 1000
  while (now() < faultsUntil) {
    await sleep(between(1000, 3000, draw))
    const dice = draw()
    const canTakeANode = nodes.up().length >= 2
    if (dice < 0.15 && canTakeANode) {
      const slot = pick(nodes.up(), draw)
      const restartAfterMs = between(0, 1500, draw)
      counts.kill++
      slot.state = 'down'
      slot.interrupted.push({ generation: slot.generation, at: now(), kind: 'SIGKILL' })
      timeline.record(
        `SIGKILL node ${slot.index}.${slot.generation} (restart ${restartAfterMs} ms after its exit)`,
      )
      slot.cli!.signalGroup('SIGKILL')
      background.push(
        (async () => {
          await slot.cli!.exited
          await sleep(restartAfterMs)
          await nodes.start(slot)
        })(),
      )
    } else if (dice < 0.3 && canTakeANode) {
      const slot = pick(nodes.up(), draw)
      const forMs = between(2000, 8000, draw)
      counts.stop++
      slot.state = 'stopped'
      slot.interrupted.push({ generation: slot.generation, at: now(), kind: 'SIGSTOP' })
      timeline.record(`SIGSTOP node ${slot.index}.${slot.generation} for ${forMs} ms`)
      slot.cli!.signalGroup('SIGSTOP')
      background.push(
        sleep(forMs).then(() => {
          slot.cli!.signalGroup('SIGCONT')
          slot.state = 'up'
          timeline.record(`SIGCONT node ${slot.index}.${slot.generation}`)
        }),
      )
    } else if (dice < 0.42) {
      const forMs = between(1000, 3000, draw)
      const admin = pick(admins, draw)
      counts.pause++
      timeline.paused(forMs)
      timeline.record(`CLIENT PAUSE ${forMs} on redis ${admin.options.port}`)
      await admin
        .call('CLIENT', 'PAUSE', String(forMs))
        .catch(err => timeline.record(`CLIENT PAUSE failed: ${String(err)}`))
    } else if (dice < 0.52) {
      counts.killPubsub++
      const killed = await Promise.all(
        admins.map(admin => admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub').catch(() => 0)),
      )
      timeline.record(`CLIENT KILL TYPE pubsub: ${String(killed)}`)
    } else if (dice < 0.6) {
      counts.killNormal++
      const killed = await Promise.all(
        admins.map(admin => admin.call('CLIENT', 'KILL', 'TYPE', 'normal').catch(() => 0)),
      )
      timeline.record(`CLIENT KILL TYPE normal: ${String(killed)}`)
    } else if (dice < 0.75) {
      const consumer = pick(consumers, draw)
      const up = nodes.up()
      if (up.length > 0) consumer.client.url = nodes.urlOf(pick(up, draw))
      if (consumer.cut()) {
        counts.cut++
        timeline.record(
          `cut ${consumer.name} (${consumer.id}) on node ${consumer.slot}, back to ${nodes.slotOfUrl(consumer.client.url)}`,
        )
      }
    } else {
      const consumer = pick(consumers, draw)
      const room = pick(sharedRooms, draw)
      const kind = draw() < 0.5 ? 'join' : 'leave'
      counts.membership++
      timeline.record(`${kind} ${consumer.name} ${room}`)
      background.push(load.membershipOp(consumer, room, kind, draw))
    }
  }
  timeline.record('faults over')
  await Promise.all(background)
  return counts
}
