/**
 * Steady load for the fault matrix, as clients see it. Producers are the
 * published snapper-producer, one connection each, spread over the hosts;
 * every room belongs to one producer, which publishes its messages in seq
 * order, alternately as a `publish` request (answered once stored) and as a
 * notification (`sendMessage`). Consumers are the bench's lean websocket
 * consumers (Engine.IO 3 and 4 in turn) on worker threads, `roomSize` per
 * room, each spread over the gateways and reconnecting (to the next gateway
 * when one is down) after a client-like back-off. Every message is unique
 * (its room and seq), so each consumer counts duplicates by content.
 */
import { once } from 'node:events'
import Producer from 'snapper-producer'
import { Tokens } from '../../src/auth/token.js'
import { newUserId } from '../../test/helpers/broker.js'
import { ConsumerPool, type PoolAudit } from '../load/consumer-pool.js'
import type { ConsumerSpec } from '../load/consumer.js'
import { makeMessage, nowUs } from '../load/message.js'
import { SECRET, type Deployment } from './deployment.js'

export interface LoadOptions {
  readonly consumers: number
  readonly roomSize: number
  readonly producers: number
  /** Messages per second, all rooms together. */
  readonly ratePerSec: number
  readonly messageBytes: number
  readonly threads: number
  /** A dropped consumer connects again after about this long (0.5× to 1.5×). */
  readonly reconnectMs: number
}

/** What the producers of one room sent, by seq. */
interface RoomLedger {
  next: number
  readonly answered: number[]
  readonly failed: number[]
  readonly notified: number[]
  readonly pending: Set<number>
}

export interface LoadOutcome {
  /** Requests answered OK, answered with an error, never answered. */
  readonly answered: number
  readonly failed: number
  readonly unanswered: number
  readonly notified: number
  /** Deliveries missing: of answered requests, and of notifications (summed over the room's consumers). */
  readonly lostAnswered: number
  readonly lostNotified: number
  readonly audit: PoolAudit
}

const TICK_MS = 20

export class FaultLoad {
  readonly pool: ConsumerPool
  readonly #producers: Producer[]
  readonly #rooms = new Map<string, RoomLedger>()
  readonly #options: LoadOptions
  #timer: NodeJS.Timeout | undefined
  #credit = 0
  #turn = 0

  private constructor(pool: ConsumerPool, producers: Producer[], options: LoadOptions) {
    this.pool = pool
    this.#producers = producers
    this.#options = options
  }

  /** Connects producers and consumers, joins every consumer to its room, and starts publishing. */
  static async start(deployment: Deployment, options: LoadOptions): Promise<FaultLoad> {
    const producerPorts = deployment.producerPorts
    const producers = Array.from({ length: options.producers }, (_, i) => {
      const producer = new Producer(producerPorts[i % producerPorts.length]!, '127.0.0.1', {
        secretKeys: [SECRET],
        producerId: `fault-${i}`,
      })
      producer.on('error', () => {}) // refusals during faults are counted through their requests
      return producer
    })
    await Promise.all(producers.map(producer => once(producer, 'connect')))

    const tokens = new Tokens([SECRET])
    const gateways = deployment.gatewayPorts
    const rooms = Math.max(1, Math.ceil(options.consumers / options.roomSize))
    const specs: ConsumerSpec[] = Array.from({ length: options.consumers }, (_, i) => {
      const eio = i % 2 === 0 ? 4 : 3
      const token = tokens.sign({ userId: newUserId() })
      // Each consumer starts on its own gateway and fails over to the next ones in turn.
      const ports = gateways.map((_, k) => gateways[(i + k) % gateways.length]!)
      return {
        host: '127.0.0.1',
        port: ports[0]!,
        ports,
        path: `/websocket/?EIO=${eio}&transport=websocket&token=${token}`,
        protocol: 'snapper',
        eio,
        room: `r${i % rooms}`,
      }
    })
    const pool = new ConsumerPool(options.threads)
    await pool.add(specs)
    // Sessions that drop from now on come back, even while the others still connect.
    await pool.reconnect(options.reconnectMs)
    const connected = await pool.connect(200)
    if (connected.failed > 0)
      throw new Error(`${connected.failed} consumers could not connect: ${connected.failures}`)
    const { sids } = (await pool.report(true)).perConsumer!
    await Promise.all(specs.map((spec, i) => join(producers[i % producers.length]!, spec.room!, sids[i]!)))

    const load = new FaultLoad(pool, producers, options)
    for (let room = 0; room < rooms; room++)
      load.#rooms.set(`r${room}`, { next: 1, answered: [], failed: [], notified: [], pending: new Set() })
    load.#timer = setInterval(() => load.#tick(), TICK_MS)
    return load
  }

  /** Publishes this tick's share of the rate, one message per room in turn. */
  #tick(): void {
    this.#credit += (this.#options.ratePerSec * TICK_MS) / 1000
    const rooms = [...this.#rooms.entries()]
    for (; this.#credit >= 1; this.#credit--) {
      const index = this.#turn++ % rooms.length
      const [room, ledger] = rooms[index]!
      const producer = this.#producers[index % this.#producers.length]!
      const seq = ledger.next++
      const message = makeMessage(seq, nowUs(), this.#options.messageBytes)
      if (seq % 2 === 1) {
        ledger.notified.push(seq)
        producer.sendMessage(room, message)
        continue
      }
      ledger.pending.add(seq)
      producer.request('publish', [[room, message]])(err => {
        ledger.pending.delete(seq)
        ;(err ? ledger.failed : ledger.answered).push(seq)
      })
    }
  }

  /** Stops publishing; waits (up to `answersMs`) for the requests still in flight to be answered. */
  async stop(answersMs: number): Promise<void> {
    clearInterval(this.#timer)
    const deadline = Date.now() + answersMs
    while ([...this.#rooms.values()].some(ledger => ledger.pending.size > 0) && Date.now() < deadline)
      await new Promise(resolve => setTimeout(resolve, 100))
  }

  /**
   * Waits until every consumer has what its room should deliver, or nothing
   * more arrives for `quietMs` (at most `maxMs`), then counts.
   */
  async settle(quietMs: number, maxMs: number): Promise<LoadOutcome> {
    const started = Date.now()
    let last = -1
    let lastChangeAt = Date.now()
    for (;;) {
      const outcome = await this.outcome()
      if (outcome.lostAnswered + outcome.lostNotified === 0) return outcome
      if (outcome.audit.received !== last) {
        last = outcome.audit.received
        lastChangeAt = Date.now()
      }
      if (Date.now() - lastChangeAt >= quietMs || Date.now() - started >= maxMs) return outcome
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }

  async outcome(): Promise<LoadOutcome> {
    const answered: Record<string, number[]> = {}
    const notified: Record<string, number[]> = {}
    let failed = 0
    let unanswered = 0
    for (const [room, ledger] of this.#rooms) {
      answered[room] = ledger.answered
      notified[room] = ledger.notified
      failed += ledger.failed.length
      unanswered += ledger.pending.size
    }
    const ofAnswered = await this.pool.audit(answered)
    const ofNotified = await this.pool.audit(notified)
    const count = (lists: Record<string, number[]>): number =>
      Object.values(lists).reduce((sum, list) => sum + list.length, 0)
    return {
      answered: count(answered),
      failed,
      unanswered,
      notified: count(notified),
      lostAnswered: ofAnswered.missing,
      lostNotified: ofNotified.missing,
      audit: ofAnswered,
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    for (const producer of this.#producers) producer.close()
    await this.pool.close()
    await this.pool.terminate()
  }
}

function join(producer: Producer, room: string, consumerId: string): Promise<void> {
  return new Promise((resolve, reject) =>
    producer.joinRoom(room, consumerId)(err => (err ? reject(err) : resolve())),
  )
}
