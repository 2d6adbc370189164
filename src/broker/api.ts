/**
 * What producers can ask of the broker: the contract between the producer
 * side (TCP listener, HTTP publish API) and the Redis core. Transport code
 * validates its input with the checks below, then calls these methods.
 */
import { SnapperError } from '../errors.js'
import type { PublishBacklog } from './publish-backlog.js'
import type { Receipt } from './tracking.js'

export type { AckReceipt, Receipt } from './tracking.js'

export type Publication = readonly [room: string, message: string]

/** A user's live connections by platform; key order is the original's. */
export interface ConsumerCounts {
  readonly length: number
  readonly android: number
  readonly ios: number
  readonly web: number
}

export interface ProducerApi {
  /**
   * Appends every message to its room's log; per room, in the order given and
   * after everything an earlier call handed over (the Redis commands are
   * issued, or queued in order during an outage, before this returns).
   * Resolves with the number of messages once
   * all of them are stored in Redis. Refuses (STORE_UNAVAILABLE) while the
   * backlog is full.
   */
  publish(publications: readonly Publication[]): Promise<number>
  /** Joins a consumer (online or not) to a room; 1 if it was not a member. */
  subscribe(room: string, consumerId: string): Promise<0 | 1>
  /** Removes a consumer from a room; 1 if it was a member. */
  unsubscribe(room: string, consumerId: string): Promise<0 | 1>
  /** Live connections of a user, counted on every node. */
  consumers(userId: string): Promise<ConsumerCounts>
  /**
   * Publishes one tracked message (delivered like any other); resolves with
   * its id once it is stored. With `escalateAfterMs`, the escalation webhook
   * gets it if no consumer acknowledged it by then.
   */
  track(room: string, message: string, escalateAfterMs?: number): Promise<string>
  /** Who acknowledged a tracked message, and whether it was escalated. */
  receipt(id: string): Promise<Receipt>
  /**
   * Publishes not stored yet. While it is full, publish and track refuse
   * with STORE_UNAVAILABLE: a caller that can wait (a producer connection)
   * stops reading until it has room again.
   */
  readonly backlog: PublishBacklog
}

export interface InputLimits {
  /** Longest room name, UTF-8 bytes. */
  readonly maxRoomBytes: number
  /** Longest message, UTF-8 bytes. */
  readonly maxMessageBytes: number
  /** Distinct rooms one publish may name. */
  readonly maxRoomsPerPublish: number
}

/** A non-empty string of at most maxBytes UTF-8 bytes. */
export function isBoundedString(value: unknown, maxBytes: number): value is string {
  // length ≤ bytes ≤ 3 × length: most strings are decided without encoding them.
  if (typeof value !== 'string' || value.length === 0 || value.length > maxBytes) return false
  return value.length * 3 <= maxBytes || Buffer.byteLength(value) <= maxBytes
}

/**
 * Refuses a whole publish that names more distinct rooms than
 * maxRoomsPerPublish: each new room is a Redis stream kept for messageTtlSec,
 * so one frame must not create thousands.
 */
export function checkRoomCount(publications: readonly Publication[], limits: InputLimits): void {
  if (publications.length <= limits.maxRoomsPerPublish) return
  const rooms = new Set<string>()
  for (const [room] of publications) {
    rooms.add(room)
    if (rooms.size > limits.maxRoomsPerPublish) throw new SnapperError('TOO_MANY_ROOMS')
  }
}

/** A room and a message that the broker accepts (the original: both non-empty strings). */
export function isValidPublication(room: unknown, message: unknown, limits: InputLimits): boolean {
  return isBoundedString(room, limits.maxRoomBytes) && isBoundedString(message, limits.maxMessageBytes)
}

/**
 * The `escalateAfterMs` of track's options: absent or null options, or an
 * object with that one key (whose range the broker checks). Anything else is
 * refused, so that a misspelt option is not silently ignored.
 */
export function escalateAfterMsOf(options: unknown): number | undefined {
  if (options === undefined || options === null) return undefined
  if (typeof options !== 'object' || Array.isArray(options)) throw new SnapperError('INVALID_PARAMS')
  const { escalateAfterMs, ...others } = options as { escalateAfterMs?: unknown }
  if (Object.keys(others).length > 0) throw new SnapperError('INVALID_PARAMS')
  if (escalateAfterMs === undefined || escalateAfterMs === null) return undefined
  if (typeof escalateAfterMs !== 'number') throw new SnapperError('INVALID_PARAMS')
  return escalateAfterMs
}

/** A string that may be a track id: the broker answers UNKNOWN_ID for one it did not make. */
export function isTrackId(value: unknown, limits: InputLimits): value is string {
  // The id holds the room in base64url (4/3 of its bytes) and a 17-character nonce.
  return isBoundedString(value, 2 * limits.maxRoomBytes + 32)
}
