import { platformOf } from '../auth/token.js'
import type { Keys } from '../redis/keys.js'
import type { Commands } from '../redis/scripts.js'
import type { ConsumerCounts } from './api.js'

/** How long a node's liveness is trusted before it is read again, in ms. */
const ALIVE_CACHE_MS = 500
/** Fields a call to drop crashed nodes' entries names at most. */
const HDEL_FIELDS_PER_CALL = 10_000

/**
 * Who is online: per user, a hash consumerId → node id, written with the
 * consumer's keys (consumer_connect-5.lua, cursor_commit-5.lua). A node
 * refreshes its own liveness key; a consumer counts only while its node is
 * alive, so a crashed node's consumers stop counting within nodeTtlMs.
 */
export class Presence {
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #alive = new Map<string, { alive: boolean; until: number }>()

  constructor(redis: Commands, keys: Keys) {
    this.#redis = redis
    this.#keys = keys
  }

  async count(userId: string): Promise<ConsumerCounts> {
    const key = this.#keys.presence(userId)
    const entries = Object.entries(await this.#redis.hgetall(key))
    const alive = await this.#aliveNodes(new Set(entries.map(([, node]) => node)))
    const counts = { length: 0, android: 0, ios: 0, web: 0 }
    const dead: string[] = []
    for (const [consumerId, node] of entries) {
      if (!alive.has(node)) {
        dead.push(consumerId)
        continue
      }
      counts.length++
      counts[platformOf(consumerId)]++
    }
    // Entries of crashed nodes are dropped lazily; a failure here only delays that. In HDELs of at
    // most HDEL_FIELDS_PER_CALL: a spread of them all overflowed the stack past about 120,000.
    for (let start = 0; start < dead.length; start += HDEL_FIELDS_PER_CALL)
      this.#redis.hdel(key, ...dead.slice(start, start + HDEL_FIELDS_PER_CALL)).catch(() => {})
    return counts
  }

  /** A user's connections with the node holding each, and whether that node is alive (for operators). */
  async list(userId: string): Promise<{ consumerId: string; nodeId: string; isAlive: boolean }[]> {
    const entries = Object.entries(await this.#redis.hgetall(this.#keys.presence(userId)))
    const alive = await this.#aliveNodes(new Set(entries.map(([, node]) => node)))
    return entries.map(([consumerId, nodeId]) => ({ consumerId, nodeId, isAlive: alive.has(nodeId) }))
  }

  /** Marks this node alive for ttlMs; call it every ttlMs / 3. False if it was not alive until now (its key had gone). */
  async touchNode(nodeId: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.set(this.#keys.nodeAlive(nodeId), '1', 'PX', ttlMs, 'GET')) !== null
  }

  async isNodeAlive(nodeId: string): Promise<boolean> {
    return (await this.#aliveNodes(new Set([nodeId]))).has(nodeId)
  }

  dropNode(nodeId: string): Promise<unknown> {
    return this.#redis.del(this.#keys.nodeAlive(nodeId))
  }

  async #aliveNodes(nodes: Set<string>): Promise<Set<string>> {
    const now = Date.now()
    const alive = new Set<string>()
    const unknown: string[] = []
    for (const node of nodes) {
      const cached = this.#alive.get(node)
      if (cached && cached.until > now) {
        if (cached.alive) alive.add(node)
      } else unknown.push(node)
    }
    const answers = await Promise.all(unknown.map(node => this.#redis.exists(this.#keys.nodeAlive(node))))
    unknown.forEach((node, i) => {
      const isAlive = answers[i] === 1
      this.#alive.set(node, { alive: isAlive, until: now + ALIVE_CACHE_MS })
      if (isAlive) alive.add(node)
    })
    if (this.#alive.size > 10_000) this.#alive.clear() // a bound, not a policy: stale nodes pile up otherwise
    return alive
  }
}
