import type { Logger } from '../log.js'
import type { Keys } from '../redis/keys.js'
import type { PubSub } from '../redis/pubsub.js'
import { batchLength, type Batch, type Entry } from './batch.js'
import { decodeAnnouncement } from './control.js'
import type { Cursor } from './cursor.js'
import type { Outbox } from './outbox.js'
import { RecentMessages, type RecentBudget } from './recent.js'

interface LocalRoom {
  readonly room: string
  readonly channel: string
  readonly members: Set<Outbox>
  /** Resolves once the node receives the room's announcements. */
  readonly subscribed: Promise<void>
  /** The tick of the room's last announcement or resync (see readEpoch). */
  epoch: number
  /** Its last announced messages, for members that fell behind or (re)join. */
  readonly recent: RecentMessages
}

export interface FanoutOptions {
  readonly batchMaxMessages: number
  readonly batchMaxBytes: number
  /** Messages a room keeps in memory for members that fall behind; 0 keeps none. */
  readonly recentMessages: number
  /** Bytes of messages one room keeps in memory. */
  readonly recentBytesPerRoom: number
  /** Bytes of messages all rooms keep in memory together. */
  readonly recentBytes: number
}

/**
 * Fan-out inside a node: the node subscribes to the announcement channel of
 * every room one of its consumers is in, and hands each announced batch to
 * every local member. An announcement is decoded once, its entries and its
 * delivery frame are shared by all members that are in step.
 */
export class Fanout {
  readonly #pubsub: PubSub
  readonly #keys: Keys
  readonly #batchMax: number
  readonly #batchMaxBytes: number
  readonly #recentMessages: number
  readonly #recentBytesPerRoom: number
  readonly #recentBudget: RecentBudget
  readonly #log: Logger
  readonly #rooms = new Map<string, LocalRoom>()
  readonly #byChannel = new Map<string, LocalRoom>()
  /** Announcements that could not be decoded (not ours, or a bug). */
  dropped = 0
  /** Announcements received, for /metrics. */
  announcements = 0
  /** Counts announcements, joins and resyncs, in the order they reach this node. */
  #ticks = 0

  constructor(pubsub: PubSub, keys: Keys, options: FanoutOptions, log: Logger) {
    this.#pubsub = pubsub
    this.#keys = keys
    this.#batchMax = options.batchMaxMessages
    this.#batchMaxBytes = options.batchMaxBytes
    this.#recentMessages = options.recentMessages
    this.#recentBytesPerRoom = options.recentBytesPerRoom
    this.#recentBudget = { maxBytes: options.recentBytes, bytes: 0 }
    this.#log = log
    // Announcements made while the subscriber is down never arrive: a window could then end
    // before the log does, and a member at its end would wrongly believe it is up to date.
    pubsub.onClose(() => {
      for (const local of this.#rooms.values()) local.recent.clear()
    })
  }

  /** Bytes of recent messages held for all rooms. */
  get recentBytes(): number {
    return this.#recentBudget.bytes
  }

  get roomCount(): number {
    return this.#rooms.size
  }

  /** Adds a local member; resolves once the room's announcements reach this node. */
  join(room: string, outbox: Outbox): Promise<void> {
    let local = this.#rooms.get(room)
    if (!local) {
      const channel = this.#keys.room(room).channel
      // A failed subscribe still lets members read the log; the resync after the subscriber reconnects heals the rest.
      const subscribed = this.#pubsub.subscribe(channel).then(
        () => {},
        (err: unknown) => this.#log.warn({ err, room }, 'subscribe failed'),
      )
      local = {
        room,
        channel,
        members: new Set(),
        subscribed,
        epoch: ++this.#ticks,
        recent: new RecentMessages(this.#recentMessages, this.#recentBytesPerRoom, this.#recentBudget),
      }
      this.#rooms.set(room, local)
      this.#byChannel.set(channel, local)
    }
    local.members.add(outbox)
    return local.subscribed
  }

  leave(room: string, outbox: Outbox): void {
    const local = this.#rooms.get(room)
    if (!local || !local.members.delete(outbox) || local.members.size > 0) return
    this.#rooms.delete(room)
    this.#byChannel.delete(local.channel)
    local.recent.clear()
    this.#pubsub
      .unsubscribe(local.channel)
      .catch((err: unknown) => this.#log.warn({ err, room }, 'unsubscribe failed'))
  }

  /** An announcement from Redis: fan it out to the room's local members. */
  announce(channel: string, bytes: Buffer): void {
    const local = this.#byChannel.get(channel)
    if (!local) return // unsubscribed meanwhile
    local.epoch = ++this.#ticks
    const announcement = decodeAnnouncement(bytes)
    if (!announcement) {
      this.dropped++
      this.#log.warn({ channel }, 'undecodable announcement dropped')
      return
    }
    this.announcements++
    const { ms, first, messages } = announcement
    const { room, members } = local
    const entries = messages.map((message, i): Entry => ({ room, ms, seq: first + i, message }))
    // Cut where a consumer's batch would be cut, so that in-step consumers share each batch.
    const chunks: Entry[][] = []
    for (let start = 0; start < entries.length;) {
      const count = batchLength(i => entries[start + i], this.#batchMax, this.#batchMaxBytes)
      const chunk = entries.slice(start, start + count)
      chunk[chunk.length - 1]!.isChunkEnd = true
      chunks.push(chunk)
      start += count
    }
    // Before offering: a member that finds a gap reads, and must find these here.
    local.recent.append(entries)
    for (const chunk of chunks) {
      let batch: Batch | undefined
      for (const outbox of members) outbox.offer(room, chunk, () => (batch ??= outbox.batchOf(chunk)))
    }
  }

  /**
   * Up to `count` messages of a room right after `cursor`, from memory, as the
   * entries the members in step were offered; undefined when the room's
   * window does not reach back that far (read the log).
   */
  recentAfter(room: string, cursor: Cursor, count: number): Entry[] | undefined {
    return this.#rooms.get(room)?.recent.after(cursor, count)
  }

  /**
   * Two log reads of a room can be shared only if no announcement of it (nor
   * a resync) reached this node between them: a member that ignored an
   * announcement (it was behind) needs a read issued after that announcement,
   * and an older read still in flight may lack its messages.
   */
  readEpoch(room: string): number {
    return this.#rooms.get(room)?.epoch ?? 0
  }

  /** Every local member of every room re-reads its log: announcements may have been lost. */
  resyncAll(): void {
    for (const local of this.#rooms.values()) {
      local.epoch = ++this.#ticks
      local.recent.clear()
      for (const outbox of local.members) outbox.resync(local.room)
    }
  }
}
