import type { Keys } from '../redis/keys.js'
import type { Commands } from '../redis/scripts.js'

type Counter = 'producerMessages' | 'consumerMessages' | 'consumers'

/** Rooms per PFADD: the joins of a Redis outage pile up, more than a call's arguments may spread. */
const ROOMS_PER_PFADD = 10_000

/**
 * The original's /stats figures. Counted in memory and written to Redis once
 * per flush (one HINCRBY per field, a PFADD per ROOMS_PER_PFADD rooms), so the shared stats keys cost
 * Redis a few commands per node per second, not some per message; read back
 * summed over every node. This class alone knows the format of the stats
 * keys (keys.stats, keys.statsRooms, keys.statsNodes).
 */
export class Stats {
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #deadNodeRetentionMs: number
  #pending: Record<Counter, number> = { producerMessages: 0, consumerMessages: 0, consumers: 0 }
  #rooms = new Set<string>()

  /** Totals since this process started, for /metrics. */
  readonly totals: Record<Counter, number> = { producerMessages: 0, consumerMessages: 0, consumers: 0 }

  /** `deadNodeRetentionMs`: how long the report of a node that stopped reporting (it crashed) is kept. */
  constructor(redis: Commands, keys: Keys, deadNodeRetentionMs: number) {
    this.#redis = redis
    this.#keys = keys
    this.#deadNodeRetentionMs = deadNodeRetentionMs
  }

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
  async flush(): Promise<void> {
    const redis = this.#redis
    const keys = this.#keys
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
    const names = [...rooms]
    for (let start = 0; start < names.length; start += ROOMS_PER_PFADD) {
      const chunk = names.slice(start, start + ROOMS_PER_PFADD)
      writes.push(
        redis.pfadd(keys.statsRooms, ...chunk).then(
          () => {},
          err => {
            for (const room of chunk) this.#rooms.add(room)
            throw err
          },
        ),
      )
    }
    await Promise.all(writes)
  }

  /**
   * Records a node's live consumer count, with the time, so that dead nodes
   * drop out, and its delivery latency bucket counts since it started (the
   * dashboard's quantiles): `"<online> <ms> <count,count,...>"`.
   */
  report(name: string, online: number, latency: readonly number[] = []): Promise<unknown> {
    return this.#redis.hset(this.#keys.statsNodes, name, `${online} ${Date.now()} ${latency.join(',')}`)
  }

  /** Drops a node's report (it stopped). */
  forget(name: string): Promise<unknown> {
    return this.#redis.hdel(this.#keys.statsNodes, name)
  }

  /** The figures of every node, as written by their last flush. */
  async read(nodeTtlMs: number): Promise<StatsSnapshot> {
    const [totals, rooms, nodes] = await Promise.all([
      this.#redis.hgetall(this.#keys.stats),
      this.#redis.pfcount(this.#keys.statsRooms),
      this.#readReports(),
    ])
    const current: Record<string, number> = {}
    let online = 0
    const since = Date.now() - nodeTtlMs
    for (const { name, online: count, at } of nodes) {
      if (!(at >= since)) continue
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

  /** Every node's last report, alive or not (a dead one stays until its entry is dropped), by name. */
  async nodeReports(nodeTtlMs: number): Promise<NodeReport[]> {
    const now = Date.now()
    const reports = (await this.#readReports()).map(({ name, online, at }) => ({
      name,
      online,
      reportedMsAgo: now - at,
      isAlive: now - at <= nodeTtlMs,
    }))
    return reports.sort((a, b) => a.name.localeCompare(b.name))
  }

  /** What the dashboard charts each second: the cluster's totals, and the live nodes' latency counts. */
  async figures(nodeTtlMs: number): Promise<ClusterFigures> {
    const [totals, reports] = await Promise.all([this.#redis.hgetall(this.#keys.stats), this.#readReports()])
    const since = Date.now() - nodeTtlMs
    let online = 0
    const latency = new Map<string, readonly number[]>()
    for (const report of reports) {
      if (!(report.at >= since)) continue
      online += report.online
      if (report.latency.length > 0) latency.set(report.name, report.latency)
    }
    return {
      published: Number(totals.producerMessages ?? 0),
      delivered: Number(totals.consumerMessages ?? 0),
      online,
      latency,
    }
  }

  /**
   * The reports in `stats:nodes` (see report()); malformed ones are skipped, a
   * missing latency is []. Only a clean stop drops a node's report: those of
   * nodes silent for longer than the retention (crashed, under names that
   * never come back) are dropped here, or the hash would grow with crashes.
   */
  async #readReports(): Promise<{ name: string; online: number; at: number; latency: number[] }[]> {
    const raw = await this.#redis.hgetall(this.#keys.statsNodes)
    const reports: { name: string; online: number; at: number; latency: number[] }[] = []
    const keptSince = Date.now() - this.#deadNodeRetentionMs
    const gone: string[] = []
    for (const [name, value] of Object.entries(raw)) {
      const [onlineText, atText, latencyText] = value.split(' ')
      const online = Number(onlineText)
      const at = Number(atText)
      if (!Number.isFinite(online) || !Number.isFinite(at)) continue
      if (at < keptSince) {
        gone.push(name)
        continue
      }
      const latency = latencyText ? latencyText.split(',').map(Number) : []
      reports.push({ name, online, at, latency: latency.every(Number.isFinite) ? latency : [] })
    }
    // A failure only delays the drop to the next read.
    if (gone.length > 0) this.#redis.hdel(this.#keys.statsNodes, ...gone).catch(() => {})
    return reports
  }
}

/** The cluster's figures at one moment (Stats.figures), for the dashboard's series. */
export interface ClusterFigures {
  /** Messages stored since the cluster's stats began (all nodes, HTTP included). */
  readonly published: number
  /** Messages acknowledged by consumers, likewise. */
  readonly delivered: number
  /** Live consumers on the nodes that reported within nodeTtlMs. */
  readonly online: number
  /** Each live node's delivery latency bucket counts since it started (DeliveryLatency.total()). */
  readonly latency: ReadonlyMap<string, readonly number[]>
}

/** One node's last report (written every statsFlushMs). */
export interface NodeReport {
  readonly name: string
  readonly online: number
  /** How long ago the node reported, in ms. */
  readonly reportedMsAgo: number
  /** Whether it reported within nodeTtlMs (only those count in `stats.online`). */
  readonly isAlive: boolean
}

/** The original's /stats `stats` object: totals, live consumers, and live consumers per node. */
export interface StatsSnapshot {
  readonly total: { producerMessages: number; consumerMessages: number; consumers: number; rooms: number }
  /** Live consumers on every node that reported within the node ttl. */
  readonly online: number
  /** Live consumers per node name (the original's `current`). */
  readonly current: Record<string, number>
}
