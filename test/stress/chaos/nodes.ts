import type { Redis } from 'ioredis'
import Producer from 'snapper-producer'
import { startCli, type RunningCli } from '../../helpers/cli.js'
import { startRedis } from '../../helpers/redis.js'
import { startRedisCluster } from '../../helpers/redis-cluster.js'
import { TEST_SECRET } from '../../helpers/broker.js'
import { pick, sleep } from './clock.js'
import type { Timeline } from './timeline.js'

/** The run's Redis: one redis-server, or (CLUSTER=1) 3 masters with a replica each. */
export interface ChaosRedis {
  /** SNAPPER_REDIS for the nodes. */
  readonly address: string
  /** A connection to each server, for the faults (CLIENT PAUSE, CLIENT KILL). */
  readonly admins: Redis[]
  stop(): Promise<void>
}

export async function startChaosRedis(isCluster: boolean): Promise<ChaosRedis> {
  if (isCluster) {
    const cluster = await startRedisCluster()
    return {
      address: cluster.nodes.map(node => node.address).join(','),
      admins: cluster.nodes.map(node => cluster.nodeClient(node.port)),
      stop: () => cluster.stop(),
    }
  }
  const redis = await startRedis()
  return { address: redis.url, admins: [redis.client()], stop: () => redis.stop() }
}

/** One node's place in the run: the node started again there keeps its ports and its producer. */
export interface Slot {
  readonly index: number
  cli: RunningCli | undefined
  state: 'up' | 'stopped' | 'down'
  /** Bumped at each start: which life of the node delivered a message. */
  generation: number
  /** When each life of the node was SIGKILLed or SIGSTOPped: what it had not flushed may come again. */
  interrupted: { generation: number; at: number; kind: 'SIGKILL' | 'SIGSTOP' }[]
  producer: Producer | undefined
  ports: { gateway: number; producer: number; admin: number } | undefined
}

/** The `snapper start --workers 1` processes, each with a snapper-producer connection to it. */
export class Nodes {
  readonly slots: Slot[] = []
  readonly #teardowns: (() => unknown)[] = []
  readonly #redis: ChaosRedis
  readonly #prefix: string
  readonly #timeline: Timeline

  constructor(redis: ChaosRedis, prefix: string, timeline: Timeline) {
    this.#redis = redis
    this.#prefix = prefix
    this.#timeline = timeline
  }

  /** Starts `count` nodes, one after the other. */
  async startAll(count: number): Promise<void> {
    for (let index = 0; index < count; index++) {
      const slot: Slot = {
        index,
        cli: undefined,
        state: 'down',
        generation: 0,
        interrupted: [],
        producer: undefined,
        ports: undefined,
      }
      this.slots.push(slot)
      await this.start(slot)
    }
  }

  /** Starts the slot's node (again: on the ports it had), retried if it fails to start. */
  async start(slot: Slot): Promise<void> {
    const teardowns = this.#teardowns
    for (let attempt = 1; ; attempt++) {
      try {
        slot.cli = await startCli(
          { teardown: fn => void teardowns.push(fn) },
          { workers: 1, env: this.#env(slot) },
        )
        break
      } catch (err) {
        if (attempt >= 5) throw err
        this.#timeline.record(`node ${slot.index} failed to start (${String(err).slice(0, 200)}), again`)
        await sleep(500)
      }
    }
    slot.ports = { ...slot.cli.ports }
    slot.generation++
    slot.state = 'up'
    if (!slot.producer) {
      const producer = new Producer(slot.ports.producer, {
        secretKeys: [TEST_SECRET],
        producerId: `p${slot.index}`,
      })
      producer.on('error', () => {}) // it reconnects by itself
      slot.producer = producer
    }
    this.#timeline.record(`node ${slot.index}.${slot.generation} up`)
  }

  up(): Slot[] {
    return this.slots.filter(slot => slot.state === 'up')
  }

  urlOf(slot: Slot): string {
    return `http://127.0.0.1:${slot.ports!.gateway}`
  }

  slotOfUrl(url: string): number {
    return this.slots.findIndex(slot => slot.ports && this.urlOf(slot) === url)
  }

  /** A node up whose producer connection is open, drawn from the seed; undefined if none. */
  liveProducer(draw: () => number): Slot | undefined {
    const ready = this.slots.filter(
      slot =>
        slot.state === 'up' &&
        slot.producer &&
        (slot.producer as unknown as { conn: { connected: boolean } }).conn.connected,
    )
    return ready.length > 0 ? pick(ready, draw) : undefined
  }

  /** Closes the producers, kills the nodes up, and waits for every process to be gone. */
  async stop(): Promise<void> {
    for (const slot of this.slots) slot.producer?.close()
    for (const slot of this.slots) if (slot.state === 'up') slot.cli?.signalGroup('SIGKILL')
    for (const fn of this.#teardowns) await fn()
  }

  #env(slot: Slot): Record<string, string> {
    return {
      SNAPPER_REDIS: this.#redis.address,
      SNAPPER_REDIS_PREFIX: this.#prefix,
      SNAPPER_TOKEN_SECRETS: TEST_SECRET,
      SNAPPER_DRAIN_SPREAD_MS: '0',
      // Clients notice a frozen node in ~3 s and move on, while it still holds their sessions.
      SNAPPER_PING_INTERVAL_MS: '1000',
      SNAPPER_PING_TIMEOUT_MS: '2000',
      ...(slot.ports && {
        SNAPPER_GATEWAY_PORT: String(slot.ports.gateway),
        SNAPPER_PRODUCER_PORT: String(slot.ports.producer),
        SNAPPER_ADMIN_PORT: String(slot.ports.admin),
      }),
    }
  }
}
