import type { BoundedLog } from '../bounded-log.js'
import { SnapperError } from '../errors.js'
import type { Logger } from '../log.js'
import type { ConsumerCounts, ProducerApi, Publication } from './api.js'
import type { Membership } from './membership.js'
import type { PublishBacklog } from './publish-backlog.js'
import { TooFewReplicas } from './replica-shortfalls.js'
import type { Presence } from './presence.js'
import type { RoomLog } from './room-log.js'
import type { Stats } from './stats.js'
import type { Tracking } from './tracking.js'

/**
 * The broker as producers see it. A batch is grouped by room: one script call
 * per room (per chunk), all issued in the same tick, which ioredis sends as
 * one pipeline; with redisReplicaAcks, one pipeline per server, each ending
 * with WAIT, and the batch is answered once the replicas have it.
 *
 * subscribe and unsubscribe take several round trips and resolve once the
 * consumer's node has been told; calls made before that may take effect in
 * either order. Callers that need order wait for them: a producer connection
 * serves them alone, an HTTP client awaits the response.
 */
export function createProducerApi(deps: {
  backlog: PublishBacklog
  log: RoomLog
  membership: Membership
  presence: Presence
  stats: Stats
  tracking: Tracking
  logger: Logger
  /** Where each failed call is logged: an outage fails every call, and the lines must not flood the log. */
  failures: BoundedLog
}): ProducerApi {
  const { backlog, log, membership, presence, stats, tracking, logger, failures } = deps
  const storeError = (err: unknown): never => {
    if (err instanceof SnapperError) throw err // a refusal, not Redis
    // Expected while a replica is down, and logged once by ReplicaShortfalls rather than per call.
    if (err instanceof TooFewReplicas)
      throw new SnapperError('STORE_UNAVAILABLE', undefined, { cause: err, reason: shortfallReason(err) })
    failures.error(logger, { err }, 'redis command failed')
    throw new SnapperError('STORE_UNAVAILABLE', undefined, { cause: err, reason: storeReason(err) })
  }

  const backlogFull = (): Promise<never> =>
    Promise.reject(
      new SnapperError('STORE_UNAVAILABLE', undefined, {
        reason: `${backlog.bytes} bytes of publishes wait for Redis (publishMaxPendingBytes): Redis is slow or down`,
      }),
    )

  return {
    backlog,
    publish(publications: readonly Publication[]): Promise<number> {
      if (backlog.isFull) return backlogFull()
      const byRoom = new Map<string, string[]>()
      let bytes = 0
      for (const [room, message] of publications) {
        bytes += Buffer.byteLength(room) + Buffer.byteLength(message)
        const messages = byRoom.get(room)
        if (messages) messages.push(message)
        else byRoom.set(room, [message])
      }
      const stored = log.appendAll(byRoom)
      backlog.hold(bytes, stored)
      return stored.then(() => {
        stats.published(publications.length)
        return publications.length
      }, storeError)
    },
    subscribe: (room, consumerId) =>
      membership.join(room, consumerId).then(joined => {
        stats.joined(room)
        return joined
      }, storeError),
    unsubscribe: (room, consumerId) => membership.leave(room, consumerId).catch(storeError),
    consumers: (userId): Promise<ConsumerCounts> => presence.count(userId).catch(storeError),
    track(room, message, escalateAfterMs) {
      if (backlog.isFull) return backlogFull()
      const stored = tracking.track(room, message, escalateAfterMs)
      backlog.hold(Buffer.byteLength(room) + Buffer.byteLength(message), stored)
      return stored.then(id => {
        stats.published(1)
        return id
      }, storeError)
    },
    receipt: id => tracking.receipt(id).catch(storeError),
  }
}

/**
 * Why Redis refused, when a client can act on it: a full Redis (`maxmemory`
 * with `noeviction`) answers every write with an OOM error, which stays so
 * until memory is freed. Connection trouble needs no words: it heals itself.
 */
export function storeReason(err: unknown): string | undefined {
  return err instanceof Error && /\bOOM\b/.test(err.message)
    ? 'Redis is out of memory (maxmemory reached): nothing was stored'
    : undefined
}

/** Why a write the replicas did not confirm was refused, and what that means for a retry. */
function shortfallReason({ confirmed, wanted }: TooFewReplicas): string {
  return `${confirmed} of ${wanted} Redis replicas confirmed in time (redisReplicaAcks): the master has it, a failover may lose it`
}
