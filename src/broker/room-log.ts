import type { Keys } from '../redis/keys.js'
import type { Commands } from '../redis/scripts.js'
import { formatCursor, ORIGIN, parseCursor, type Cursor } from './cursor.js'

export interface LogEntry extends Cursor {
  readonly message: string
}

export interface RoomLogOptions {
  /** Messages a room keeps at most. */
  readonly maxLen: number
  /** How long a room keeps a message, in seconds. */
  readonly ttlSec: number
  /** Announce with SPUBLISH (Redis Cluster) instead of PUBLISH. */
  readonly sharded: boolean
}

/** Messages per script call: a huge batch for one room must not stall Redis for long. */
const APPEND_CHUNK = 256

/**
 * The per-room log in Redis: a stream bounded by length and age, whose ids
 * carry a contiguous sequence number. One append is one script call on the
 * room's slot, whatever the room's size: fan-out happens in the nodes.
 */
export class RoomLog {
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #options: RoomLogOptions

  constructor(redis: Commands, keys: Keys, options: RoomLogOptions) {
    this.#redis = redis
    this.#keys = keys
    this.#options = options
  }

  /**
   * Appends messages to one room, in order. The script calls are issued before
   * this returns, so calls made one after another keep their order.
   * Resolves with the cursor of the first message.
   */
  append(room: string, messages: readonly string[]): Promise<Cursor> {
    const { log, head, channel } = this.#keys.room(room)
    const { maxLen, ttlSec, sharded } = this.#options
    const publish = sharded ? 'SPUBLISH' : 'PUBLISH'
    const calls: Promise<[number, number]>[] = []
    for (let start = 0; start < messages.length; start += APPEND_CHUNK) {
      const chunk = messages.slice(start, start + APPEND_CHUNK)
      calls.push(this.#redis.roomAppend(log, head, channel, maxLen, ttlSec, publish, ...chunk))
    }
    return Promise.all(calls).then(results => {
      const [ms, seq] = results[0] ?? [0, 0]
      return { ms, seq }
    })
  }

  /** Up to `count` messages after `after`, oldest first; none older than the ttl. */
  async read(room: string, after: Cursor, count: number): Promise<LogEntry[]> {
    const flat = await this.#redis.roomRead(
      this.#keys.room(room).log,
      formatCursor(after),
      count,
      this.#options.ttlSec,
    )
    const entries: LogEntry[] = []
    for (let i = 0; i + 1 < flat.length; i += 2)
      entries.push({ ...parseCursor(flat[i]!), message: flat[i + 1]! })
    return entries
  }

  /** The cursor of the newest message ever appended (ORIGIN for an empty room). */
  async head(room: string): Promise<Cursor> {
    const [seq, ms] = await this.#redis.hmget(this.#keys.room(room).head, 's', 't')
    return seq && ms ? { ms: Number(ms), seq: Number(seq) } : ORIGIN
  }
}
