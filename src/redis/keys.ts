import { userIdOf } from '../auth/token.js'

/**
 * Every Redis key and channel name (who writes and reads each one:
 * docs/ARCHITECTURE.md, Redis keys). All keys that one script touches share one
 * hash tag ({r:room}, {u:user}, {c:consumer}), so every script runs on a single
 * hash slot: the same code serves one Redis and a Redis Cluster.
 *
 * A user's keys share its slot: its presence, its consumers' keys and its own
 * room `user<userId>`, so that a handshake (consumer_connect) is one script.
 * Consumer ids that name no user (a producer may join any string) keep
 * their own slot.
 *
 * Names are built by concatenation; the fixed suffixes (":log", ":head", ...)
 * are not suffixes of each other, so two different names never give one key.
 */
export interface RoomKeys {
  /** Stream: the room log, entry ids `<ms>-<seq>`, one field `m` (the message). */
  readonly log: string
  /** Hash {s: last seq, t: ms of the last append}. */
  readonly head: string
  /** Pub/sub channel (sharded on a cluster) announcing appends to the nodes. */
  readonly channel: string
  /**
   * Hash consumerId → cursor: what live members acknowledged, written by their
   * node once per flush for all of them (one write per room, whatever its
   * size); read only when a consumer's last node did not release it (crash).
   */
  readonly progress: string
}

export interface ConsumerKeys {
  /** Hash room → cursor (`<ms>-<seq>` of the last acknowledged message). */
  readonly rooms: string
  /** String: id of the node that holds the consumer's live session. */
  readonly node: string
  /** String: the batch that was unacknowledged when the consumer last went away. */
  readonly inflight: string
  /** Set: rooms it left while its record looked lost, for the restore to leave out (consumer_leave-3.lua). */
  readonly left: string
}

export class Keys {
  constructor(readonly prefix: string) {}

  room(room: string): RoomKeys {
    const tag = this.#roomTag(room)
    return { log: `${tag}:log`, head: `${tag}:head`, channel: `${tag}:ch`, progress: `${tag}:progress` }
  }

  consumer(consumerId: string): ConsumerKeys {
    const user = userIdOf(consumerId)
    const tag =
      user === undefined ? `${this.prefix}:{c:${consumerId}}` : `${this.prefix}:{u:${user}}:c:${consumerId}`
    return { rooms: `${tag}:rooms`, node: `${tag}:node`, inflight: `${tag}:inflight`, left: `${tag}:left` }
  }

  /**
   * Hash of one tracked message (room_append-4n.lua, track_ack-1.lua): its log
   * entry id, its receipts, whether it was escalated. On the room's slot, so
   * the append makes it atomically. `nonce` is base64url: no `:` or `}`.
   */
  track(room: string, nonce: string): string {
    return `${this.#roomTag(room)}:t:${nonce}`
  }

  /** The escalations waiting for their time (escalation_*.lua): one slot for all of them. */
  get escalations(): { readonly due: string; readonly info: string } {
    const tag = `${this.prefix}:{esc}`
    return { due: `${tag}:due`, info: `${tag}:info` }
  }

  /**
   * Operators' questions to every node (room-members.ts): the channel all
   * nodes hear, and the hash where one question's answers gather (node name →
   * answer), on the same slot.
   */
  get queries(): { readonly channel: string; answers(queryId: string): string } {
    const tag = `${this.prefix}:{q}`
    return { channel: `${tag}:ch`, answers: queryId => `${tag}:a:${queryId}` }
  }

  /** What every key of a room starts with: `{r:room}`, or for a user's own room the user's slot. */
  #roomTag(room: string): string {
    // test, not exec: no match array for each message's keys
    return USER_ROOM.test(room) ? `${this.prefix}:{u:${room.slice(4)}}:r` : `${this.prefix}:{r:${room}}`
  }

  /** Hash consumerId → nodeId of a user's live connections. */
  presence(userId: string): string {
    return `${this.prefix}:{u:${userId}}:presence`
  }

  /** String with a TTL: present while the node is alive. */
  nodeAlive(nodeId: string): string {
    return `${this.prefix}:{n:${nodeId}}:alive`
  }

  /** Channel on which other nodes tell a node about joins, leaves and replaced sessions. */
  nodeChannel(nodeId: string): string {
    return `${this.prefix}:{n:${nodeId}}:ctl`
  }

  /** Hash of the original's totals: producerMessages, consumerMessages, consumers. */
  get stats(): string {
    return `${this.prefix}:stats`
  }

  /** HyperLogLog of the rooms ever published to. */
  get statsRooms(): string {
    return `${this.prefix}:stats:rooms`
  }

  /** Hash nodeName → live consumers on that node (the original's `current`). */
  get statsNodes(): string {
    return `${this.prefix}:stats:nodes`
  }
}

/** The room every consumer joins on connect, as the original did. */
export const userRoom = (userId: string): string => `user${userId}`

/** A user's own room: `user` and a user id as tokens carry it (24 lowercase hex digits). */
const USER_ROOM = /^user[a-f0-9]{24}$/
