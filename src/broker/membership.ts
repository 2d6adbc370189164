import type { Keys } from '../redis/keys.js'
import type { PubSub } from '../redis/pubsub.js'
import type { Commands } from '../redis/scripts.js'
import { encodeControl, type ControlMessage } from './control.js'
import { formatCursor } from './cursor.js'
import type { RoomLog } from './room-log.js'

/**
 * Room membership, kept on the consumer's slot (hash room → cursor): joining
 * records the room's head as the consumer's cursor, so it receives every
 * message published after the join. If the consumer is online, the node
 * holding it is told on its control channel; it does not need to be online.
 */
export class Membership {
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #log: RoomLog
  readonly #pubsub: PubSub
  readonly #ttlSec: number

  constructor(redis: Commands, pubsub: PubSub, keys: Keys, log: RoomLog, options: { ttlSec: number }) {
    this.#redis = redis
    this.#pubsub = pubsub
    this.#keys = keys
    this.#log = log
    this.#ttlSec = options.ttlSec
  }

  async join(room: string, consumerId: string): Promise<0 | 1> {
    const cursor = formatCursor(await this.#log.head(room))
    const { rooms, node } = this.#keys.consumer(consumerId)
    const [added, nodeId] = await this.#redis.consumerJoin(rooms, node, room, cursor, this.#ttlSec)
    if (added === 1 && nodeId) await this.tell(nodeId, { type: 'join', consumerId, room, cursor })
    return added === 1 ? 1 : 0
  }

  /**
   * Removes the room from the consumer and tells its node on the node's
   * channel. On a Cluster (sharded channels) also on the room's: the two are
   * on different masters' connections, so the node may read an announcement
   * published after this answer before the first notice; the second comes on
   * the connection that carries the room's announcements, ahead of them
   * (README, The protocol). One Redis carries both on one connection, in order.
   */
  async leave(room: string, consumerId: string): Promise<0 | 1> {
    const { rooms, node } = this.#keys.consumer(consumerId)
    const [removed, nodeId] = await this.#redis.consumerLeave(rooms, node, room)
    if (removed === 1 && nodeId) {
      const notice = encodeControl({ type: 'leave', consumerId, room })
      const told = [this.#pubsub.publish(this.#keys.nodeChannel(nodeId), notice)]
      if (this.#pubsub.publishCommand === 'SPUBLISH')
        told.push(this.#pubsub.publish(this.#keys.room(room).channel, notice))
      await Promise.all(told)
    }
    return removed === 1 ? 1 : 0
  }

  /** Sends a control message to one node. */
  tell(nodeId: string, message: ControlMessage): Promise<unknown> {
    return this.#pubsub.publish(this.#keys.nodeChannel(nodeId), encodeControl(message))
  }
}
