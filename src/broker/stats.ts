import type { Keys } from '../redis/keys.js'
import type { Commands } from '../redis/scripts.js'

type Counter = 'producerMessages' | 'consumerMessages' | 'consumers'

/**
 * The original's counters, summed in memory and written to Redis once per
 * flush (one HINCRBY per field, one PFADD), so the shared stats keys cost
 * Redis a few commands per node per second, not some per message.
 */
export class StatsCounters {
  #pending: Record<Counter, number> = { producerMessages: 0, consumerMessages: 0, consumers: 0 }
  #rooms = new Set<string>()

  /** Totals since this process started, for /metrics. */
  readonly totals: Record<Counter, number> = { producerMessages: 0, consumerMessages: 0, consumers: 0 }

  published(count: number): void {
    this.#add('producerMessages', count)
  }

  /** `total.rooms` counts distinct rooms joined, as the original did: a consumer's own room on connect, and every subscribe. */
  joined(room: string): void {
    this.#rooms.add(room)
  }

  delivered(count: number): void {
    this.#add('consumerMessages', count)
  }

  connected(): void {
    this.#add('consumers', 1)
  }

  #add(counter: Counter, n: number): void {
    this.#pending[counter] += n
    this.totals[counter] += n
  }

  /** Writes what accumulated; what fails to be written is kept for the next flush. */
  async flush(redis: Commands, keys: Keys): Promise<void> {
    const pending = this.#pending
    const rooms = this.#rooms
    this.#pending = { producerMessages: 0, consumerMessages: 0, consumers: 0 }
    this.#rooms = new Set()
    const writes: Promise<void>[] = []
    for (const counter of Object.keys(pending) as Counter[]) {
      const n = pending[counter]
      if (n > 0)
        writes.push(
          redis.hincrby(keys.stats, counter, n).then(
            () => {},
            err => {
              this.#pending[counter] += n
              throw err
            },
          ),
        )
    }
    if (rooms.size > 0)
      writes.push(
        redis.pfadd(keys.statsRooms, ...rooms).then(
          () => {},
          err => {
            for (const room of rooms) this.#rooms.add(room)
            throw err
          },
        ),
      )
    await Promise.all(writes)
  }
}

/** The original's /stats `stats` object: totals, live consumers, and live consumers per node. */
export interface StatsSnapshot {
  readonly total: { producerMessages: number; consumerMessages: number; consumers: number; rooms: number }
  /** Live consumers on every node that reported within the node ttl. */
  readonly online: number
  /** Live consumers per node name (the original's `current`). */
  readonly current: Record<string, number>
}

/** Records a node's live consumer count (with the time, so that dead nodes drop out). */
export function reportNode(redis: Commands, keys: Keys, name: string, online: number): Promise<unknown> {
  return redis.hset(keys.statsNodes, name, `${online} ${Date.now()}`)
}

export function forgetNode(redis: Commands, keys: Keys, name: string): Promise<unknown> {
  return redis.hdel(keys.statsNodes, name)
}

export async function readStats(redis: Commands, keys: Keys, nodeTtlMs: number): Promise<StatsSnapshot> {
  const [totals, rooms, nodes] = await Promise.all([
    redis.hgetall(keys.stats),
    redis.pfcount(keys.statsRooms),
    redis.hgetall(keys.statsNodes),
  ])
  const current: Record<string, number> = {}
  let online = 0
  const since = Date.now() - nodeTtlMs
  for (const [name, value] of Object.entries(nodes)) {
    const [count, at] = value.split(' ').map(Number)
    if (count === undefined || at === undefined || !(at >= since)) continue
    current[name] = count
    online += count
  }
  const total = (field: string): number => Number(totals[field] ?? 0)
  return {
    total: {
      producerMessages: total('producerMessages'),
      consumerMessages: total('consumerMessages'),
      consumers: total('consumers'),
      rooms,
    },
    online,
    current,
  }
}
