/** Counters shared by every connection of a producer listener; read by the metrics module. */
import type { ErrorCode } from '../errors.js'

export interface ProducerCounters {
  /** Frames decoded. */
  frames: number
  /** Notifications ignored: unknown method, `publish` without params, a late `auth`. */
  ignored: number
  /** Requests and notifications in flight (answers not yet written, publishes not yet stored). */
  pending: number
  /** Connections not reading now: write backpressure, too much in flight, or a subscribe/unsubscribe served alone. */
  paused: number
  /** Times a connection stopped reading (same reasons). */
  pauses: number
  /** Errors answered or logged, by code. */
  readonly errors: Partial<Record<ErrorCode, number>>
}

export function createCounters(): ProducerCounters {
  return { frames: 0, ignored: 0, pending: 0, paused: 0, pauses: 0, errors: {} }
}

export function countError(counters: ProducerCounters, code: ErrorCode): void {
  counters.errors[code] = (counters.errors[code] ?? 0) + 1
}
