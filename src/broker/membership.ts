import { setTimeout as sleep } from 'node:timers/promises'
import { userIdOf } from '../auth/token.js'
import { SnapperError } from '../errors.js'
import { userRoom, type Keys } from '../redis/keys.js'
import type { PubSub } from '../redis/pubsub.js'
import { isRedirect } from '../redis/redirects.js'
import type { ScriptRequests } from '../redis/script-request.js'
import { scriptRequests, type Arg, type Commands } from '../redis/scripts.js'
import { encodeControl, type ControlMessage } from './control.js'
import { formatCursor } from './cursor.js'
import { RECONNECT_POLL_MS, type GroupCommit } from './group-commit.js'
import type { RoomLog } from './room-log.js'

/** The join and leave scripts' reply: 1 if the room was added (removed) else 0 (join: -1 if refused), and the consumer's node id. */
type MembershipReply = [changed: number, nodeId: string | null]

/** Through the replicated writer: written straight into a pipeline (not sent again on NOSCRIPT, which ioredis' scripts would do after the pipeline's WAIT). */
const JOIN = scriptRequests('consumer_join-3.lua')
const LEAVE = scriptRequests('consumer_leave-3.lua')

/**
 * Room membership, kept on the consumer's slot (hash room → cursor): joining
 * records the room's head as the consumer's cursor, so it receives every
 * message published after the join. If the consumer is online, the node
 * holding it is told on its control channel; it does not need to be online.
 *
 * With `groupCommit` (redisReplicaAcks > 0) a join or leave is answered once
 * that many replicas hold it, as a publish is (README, Redis Cluster): the
 * script goes through the group commit, in a pipeline ending in WAIT. Too few
 * in time: the master has it and the node is told, but the call rejects
 * (STORE_UNAVAILABLE); sent again, it answers 0 (already in, already out).
 */
export class Membership {
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #log: RoomLog
  readonly #pubsub: PubSub
  readonly #ttlSec: number
  readonly #maxRooms: number
  readonly #groupCommit: GroupCommit | undefined

  constructor(
    redis: Commands,
    pubsub: PubSub,
    keys: Keys,
    log: RoomLog,
    options: { ttlSec: number; maxRooms: number; groupCommit?: GroupCommit },
  ) {
    this.#redis = redis
    this.#pubsub = pubsub
    this.#keys = keys
    this.#log = log
    this.#ttlSec = options.ttlSec
    this.#maxRooms = options.maxRooms
    this.#groupCommit = options.groupCommit
  }

  async join(room: string, consumerId: string): Promise<0 | 1> {
    const cursor = formatCursor(await this.#log.head(room))
    const { rooms, node, left } = this.#keys.consumer(consumerId)
    const { reply, unconfirmed } = this.#groupCommit
      ? await this.#storeReplicated(
          JOIN,
          [rooms, node, left],
          [room, cursor, this.#ttlSec, this.#maxRooms],
          this.#groupCommit,
        )
      : {
          reply: await this.#redis.consumerJoin(
            rooms,
            node,
            left,
            room,
            cursor,
            this.#ttlSec,
            this.#maxRooms,
          ),
          unconfirmed: undefined,
        }
    const [added, nodeId] = reply
    if (added === -1)
      throw new SnapperError('CONSUMER_ROOMS_FULL', undefined, {
        reason: `the consumer is in ${this.#maxRooms} rooms (maxRoomsPerConsumer): leave one first`,
      })
    if (added === 1 && nodeId) await this.tell(nodeId, { type: 'join', consumerId, room, cursor })
    if (unconfirmed) throw unconfirmed
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
    const { rooms, node, left } = this.#keys.consumer(consumerId)
    // Its own room tells a record Redis lost from one it has (consumer_leave-3.lua).
    const user = userIdOf(consumerId)
    const args = [room, user === undefined ? '' : userRoom(user), this.#ttlSec] as const
    const { reply, unconfirmed } = this.#groupCommit
      ? await this.#storeReplicated(LEAVE, [rooms, node, left], args, this.#groupCommit)
      : { reply: await this.#redis.consumerLeave(rooms, node, left, ...args), unconfirmed: undefined }
    const [removed, nodeId] = reply
    if (removed === 1 && nodeId) {
      const notice = encodeControl({ type: 'leave', consumerId, room })
      const told = [this.#pubsub.publish(this.#keys.nodeChannel(nodeId), notice)]
      if (this.#pubsub.publishCommand === 'SPUBLISH')
        told.push(this.#pubsub.publish(this.#keys.room(room).channel, notice))
      await Promise.all(told)
    }
    if (unconfirmed) throw unconfirmed
    return removed === 1 ? 1 : 0
  }

  /**
   * Runs a join or leave script through the group commit: in its pipeline to
   * the master of the consumer's slot, once connected, then WAIT. Sent again
   * when Redis says it did not run (a redirect while the slot moves, a script
   * cache emptied); any other failure rejects, the script run or not.
   * `unconfirmed` says why the replicas did not confirm it in time.
   */
  async #storeReplicated(
    script: ScriptRequests,
    keys: readonly string[],
    args: readonly Arg[],
    groupCommit: GroupCommit,
  ): Promise<{ reply: MembershipReply; unconfirmed: Error | undefined }> {
    const command = (): ReturnType<ScriptRequests['command']> => {
      const request = script.start(keys.length, args.length)
      for (const key of keys) request.key(key)
      for (const arg of args) request.arg(arg)
      return script.command(request.end())
    }
    for (;;) {
      const { err, reply, short } = await groupCommit.write(keys[0]!, command)
      if (err) {
        if (!isRedirect(err) && !/^NOSCRIPT /.test(err.message)) throw err
        await sleep(RECONNECT_POLL_MS) // then to where the slot map says now (GroupCommit refreshed it)
        continue
      }
      return { reply: reply as MembershipReply, unconfirmed: short }
    }
  }

  /** Sends a control message to one node. */
  tell(nodeId: string, message: ControlMessage): Promise<unknown> {
    return this.#pubsub.publish(this.#keys.nodeChannel(nodeId), encodeControl(message))
  }
}
