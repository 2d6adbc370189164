import type { Keys } from '../redis/keys.js'
import type { PubSub } from '../redis/pubsub.js'
import { markChunkEnds, type Batch } from './batch.js'
import { decodeAnnouncement } from './control.js'
import { formatCursor, type Cursor } from './cursor.js'
import { makeEntry, type Entry, type LogEntries } from './entry.js'
import type { NodeContext } from './node-context.js'
import type { Outbox } from './outbox.js'
import { RecentMessages, type RecentBounds } from './recent.js'
import type { RoomLog } from './room-log.js'

/** A settled subscription: one promise for every room, not the room's own kept for its life (docs/performance.md, section 1). */
const SUBSCRIBED = Promise.resolve(true)
const NOT_SUBSCRIBED = Promise.resolve(false)

interface LocalRoom {
  readonly room: string
  readonly channel: string
  /**
   * Its local member itself while it has one (a consumer's own room, most rooms of a node), a
   * Set from the second on: an empty Set is about 150 bytes with its table (docs/performance.md,
   * section 1, item 23). Never empty: the room goes when its last member leaves.
   */
  members: Outbox | Set<Outbox>
  /** Resolves once the node receives the room's announcements (false: the subscription failed); once settled, a shared one. */
  subscribed: Promise<boolean>
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
 * delivery frame are shared by all members that are in step. Members that
 * read the room's log read through here too: from the room's recent
 * messages in memory when they reach back far enough, else from Redis, one
 * read for all members that ask for the same range.
 */
export class Fanout {
  readonly #pubsub: PubSub
  readonly #keys: Keys
  readonly #roomLog: RoomLog
  readonly #context: NodeContext
  readonly #batchMax: number
  readonly #batchMaxBytes: number
  readonly #recentBounds: RecentBounds
  readonly #rooms = new Map<string, LocalRoom>()
  readonly #byChannel = new Map<string, LocalRoom>()
  /** Subscribes in flight, by the promise PubSub.subscribe gave: the rooms of one command share an outcome. */
  readonly #subscribing = new Map<Promise<unknown>, { subscribed: Promise<boolean>; rooms: LocalRoom[] }>()
  /** Log reads in flight, by range and read epoch: members that ask for one range share it. */
  readonly #reads = new Map<string, Promise<LogEntries>>()
  /** Announcements that could not be decoded (not ours, or a bug). */
  dropped = 0
  /** Announcements received, for /metrics. */
  announcements = 0
  /** Counts announcements, joins and resyncs, in the order they reach this node. */
  #ticks = 0

  constructor(pubsub: PubSub, keys: Keys, roomLog: RoomLog, options: FanoutOptions, context: NodeContext) {
    this.#pubsub = pubsub
    this.#keys = keys
    this.#roomLog = roomLog
    this.#context = context
    this.#batchMax = options.batchMaxMessages
    this.#batchMaxBytes = options.batchMaxBytes
    this.#recentBounds = {
      maxMessages: options.recentMessages,
      maxBytes: options.recentBytesPerRoom,
      budget: { maxBytes: options.recentBytes, bytes: 0 },
    }
    // Announcements made while the subscriber is down never arrive: a window could then end
    // before the log does, and a member at its end would wrongly believe it is up to date.
    pubsub.onClose(() => {
      for (const local of this.#rooms.values()) local.recent.clear()
    })
  }

  /** Bytes of recent messages held for all rooms. */
  get recentBytes(): number {
    return this.#recentBounds.budget.bytes
  }

  get roomCount(): number {
    return this.#rooms.size
  }

  /** Rooms by channel, and log reads in flight (a leak check's reading). */
  get sizes(): { readonly channels: number; readonly reads: number } {
    return { channels: this.#byChannel.size, reads: this.#reads.size }
  }

  /**
   * Adds a local member (already in the room at its cursor, Outbox.addRoom)
   * and, once the room's announcements reach this node, has it read the log
   * from its cursor: what was announced before that is in the log.
   */
  follow(room: string, outbox: Outbox): void {
    void this.#join(room, outbox).then(() => outbox.resync(room))
  }

  /**
   * Adds a local member ahead of its rooms (the consumer is connecting);
   * resolves once the room's announcements reach this node, false if the
   * subscription failed. A head read after that may anchor the room (anchor).
   */
  listen(room: string, outbox: Outbox): Promise<boolean> {
    return this.#join(room, outbox)
  }

  /**
   * `head` is the room's newest message, read after listen() resolved true:
   * every message after it will be announced here, so a member at the head
   * goes live without reading the log.
   */
  anchor(room: string, head: Cursor): void {
    this.#rooms.get(room)?.recent.anchor(head)
  }

  /** Adds a local member; resolves once the room's announcements reach this node (false: the subscription failed). */
  #join(room: string, outbox: Outbox): Promise<boolean> {
    let local = this.#rooms.get(room)
    if (!local) {
      const channel = this.#keys.room(room).channel
      local = {
        room,
        channel,
        members: outbox,
        subscribed: NOT_SUBSCRIBED,
        epoch: ++this.#ticks,
        recent: new RecentMessages(this.#recentBounds),
      }
      local.subscribed = this.#subscribe(local)
      this.#rooms.set(room, local)
      this.#byChannel.set(channel, local)
    } else if (local.members instanceof Set) local.members.add(outbox)
    else if (local.members !== outbox) local.members = new Set([local.members, outbox])
    return local.subscribed
  }

  /**
   * Subscribes a new room's channel. The rooms whose channels one command
   * subscribes (PubSub.subscribe hands them one promise: a turn's asks go as
   * one SUBSCRIBE) share one outcome, and once it settles each takes the
   * shared settled one: no promise or closure of a room's own, a connect in
   * 1,000 rooms new to the node makes a few (docs/performance.md, section 1, item 24).
   */
  #subscribe(local: LocalRoom): Promise<boolean> {
    const asked = this.#pubsub.subscribe(local.channel)
    let outcome = this.#subscribing.get(asked)
    if (!outcome) {
      const rooms: LocalRoom[] = []
      // A failed subscribe still lets members read the log; the resync after the subscriber reconnects heals the rest.
      const subscribed = asked.then(
        () => true,
        (err: unknown) => {
          this.#context.redisError(err, 'subscribe failed', { room: rooms[0]?.room, rooms: rooms.length })
          return false
        },
      )
      outcome = { subscribed, rooms }
      this.#subscribing.set(asked, outcome)
      void subscribed.then(isSubscribed => {
        this.#subscribing.delete(asked)
        const settled = isSubscribed ? SUBSCRIBED : NOT_SUBSCRIBED
        for (const room of rooms) if (room.subscribed === subscribed) room.subscribed = settled
      })
    }
    outcome.rooms.push(local)
    return outcome.subscribed
  }

  leave(room: string, outbox: Outbox): void {
    const local = this.#rooms.get(room)
    if (!local) return
    const members = local.members
    if (members instanceof Set) {
      // One left: the room holds it alone again.
      if (members.delete(outbox) && members.size === 1) for (const last of members) local.members = last
      return
    }
    if (members !== outbox) return
    this.#rooms.delete(room)
    this.#byChannel.delete(local.channel)
    local.recent.clear()
    this.#pubsub
      .unsubscribe(local.channel)
      .catch((err: unknown) => this.#context.redisError(err, 'unsubscribe failed', { room }))
  }

  /** An announcement from Redis: fan it out to the room's local members. */
  announce(channel: string, bytes: Buffer): void {
    const local = this.#byChannel.get(channel)
    if (!local) return // unsubscribed meanwhile
    local.epoch = ++this.#ticks
    const announcement = decodeAnnouncement(bytes)
    if (!announcement) {
      this.dropped++
      this.#context.log.warn({ channel }, 'undecodable announcement dropped')
      return
    }
    this.announcements++
    const { ms, first, messages, track } = announcement
    const room = local.room
    const last = messages.length - 1
    // Seq 1 begins an incarnation of the log: it began at this ms (the recent window passes it on).
    const since = first === 1 ? ms : 0
    const entries = messages.map((message, i) =>
      makeEntry(room, ms, first + i, message, track, i === last, since),
    )
    // Cut where a consumer's batch would be cut, so that in-step consumers share each batch.
    markChunkEnds(entries, this.#batchMax, this.#batchMaxBytes)
    const chunks: Entry[][] = []
    for (let start = 0, i = 0; i < entries.length; i++) {
      if (!entries[i]!.isChunkEnd) continue
      chunks.push(entries.slice(start, i + 1))
      start = i + 1
    }
    // Before offering: a member that finds a gap reads, and must find these here.
    local.recent.append(entries)
    for (const chunk of chunks) {
      const members = local.members
      if (members instanceof Set) {
        let batch: Batch | undefined
        for (const outbox of members) outbox.offer(room, chunk, () => (batch ??= outbox.batchOf(chunk)))
      } else members.offer(room, chunk, () => members.batchOf(chunk))
    }
  }

  /** The consumers of a room whose sessions this node holds. */
  members(room: string): Iterable<Outbox> {
    const local = this.#rooms.get(room)
    return local ? membersOf(local) : []
  }

  /** Stops fanning out to `outbox` in every room (it was released). */
  leaveAll(outbox: Outbox): void {
    for (const room of outbox.rooms) this.leave(room, outbox)
  }

  /**
   * Up to `count` messages of `room` after `after` (OutboxHost.read): the
   * entries the members in step were offered, if the room's recent messages
   * reach back that far; else a log read, shared by members that ask for
   * the same range at the same read epoch.
   */
  read(room: string, after: Cursor, count: number): Promise<LogEntries> {
    const local = this.#rooms.get(room)
    const recent = local?.recent.after(after, count)
    if (recent) return Promise.resolve(recent)
    // Two reads of a room can be shared only if no announcement of it (nor a resync) reached
    // this node between them: a member that ignored an announcement (it was behind) needs a
    // read issued after that announcement, and an older read still in flight may lack it.
    const key = `${count}:${formatCursor(after)}:${local?.epoch ?? 0}:${room}`
    let read = this.#reads.get(key)
    if (!read) {
      this.#context.counters.logReads++
      read = this.#roomLog.read(room, after, count).then(entries => {
        markChunkEnds(entries, this.#batchMax, this.#batchMaxBytes)
        return entries
      })
      this.#reads.set(key, read)
      void read.finally(() => this.#reads.delete(key)).catch(() => {}) // the readers handle the error
    }
    return read
  }

  /** Every local member of every room re-reads its log: announcements may have been lost. */
  resyncAll(): void {
    for (const local of this.#rooms.values()) {
      local.epoch = ++this.#ticks
      local.recent.clear()
      for (const outbox of membersOf(local)) outbox.resync(local.room)
    }
  }
}

/** A room's members to iterate where a one-element array per room costs nothing that matters (not announce). */
const membersOf = (local: LocalRoom): Iterable<Outbox> =>
  local.members instanceof Set ? local.members : [local.members]
