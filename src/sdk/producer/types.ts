/** The producer SDK's public types: its options, what its calls take and answer, its events. */
import type { SnapperError } from '../errors.js'

/** `new Producer(options)`: the settings, and exactly one of `secret` and `token`. */
export type ProducerOptions = ProducerSettings & (WithSecret | WithToken)

export interface WithSecret {
  /** One of the broker's token secrets: signs this producer's auth token, and consumer tokens. */
  readonly secret: string
  readonly token?: never
}

export interface WithToken {
  /** A producer token (`{id, exp}` signed with a broker secret), used as it is; such a producer cannot sign consumer tokens. */
  readonly token: string
  readonly secret?: never
}

export interface ProducerSettings {
  /** The broker's producer host. @default '127.0.0.1' */
  readonly host?: string
  /** The broker's producer port. @default 7700 */
  readonly port?: number
  /** This producer's name, in its auth token. */
  readonly id: string
  /** The broker's `tokenAlgorithm`. @default 'HS256' */
  readonly algorithm?: 'HS256' | 'HS384' | 'HS512'
  /** Calls sent and not yet answered, at most; more wait for a slot. @default 1024 */
  readonly maxInFlight?: number
  /** Time a call may take, from the call to its answer, in ms. @default 120000 */
  readonly requestTimeoutMs?: number
  /** The broker's `maxFrameBytes`: larger publish batches are split, a larger single call is refused. @default 1048576 */
  readonly maxFrameBytes?: number
  /** First reconnect delay, in ms: drawn in [reconnectMinMs / 2, reconnectMinMs], the bounds doubling at each failure. @default 100 */
  readonly reconnectMinMs?: number
  /** Longest reconnect delay, in ms. @default 10000 */
  readonly reconnectMaxMs?: number
}

/** A room and a message. */
export type Publication = readonly [room: string, message: string]

/** A user's live connections, on every node. */
export interface ConsumerCounts {
  readonly length: number
  readonly android: number
  readonly ios: number
  readonly web: number
}

export interface TrackOptions {
  /** Escalate (the broker's webhook) when no consumer acknowledged it within this many ms. */
  readonly escalateAfterMs?: number
}

/** A tracked message: the id to ask its receipt with. */
export interface Tracked {
  readonly id: string
}

/** One consumer that acknowledged a tracked message. */
export interface ReceiptAck {
  readonly consumerId: string
  readonly userId: string
  readonly platform: ConsumerPlatform
  /** When it acknowledged, in ms since the epoch. */
  readonly ackedAt: number
}

export interface Receipt {
  /** The consumers that acknowledged it, the first `trackMaxReceipts` (1,000 by default) of them. */
  readonly acked: readonly ReceiptAck[]
  /** Acknowledgements past those: counted, not listed. */
  readonly moreAcks: number
  /** Whether the message was escalated (nobody acknowledged it in time). */
  readonly escalated: boolean
}

/** Where a consumer runs: what `consumers()` and receipts count it under. */
export type ConsumerPlatform = 'web' | 'ios' | 'android'

export interface ConsumerTokenClaims {
  /** The user, 24 lowercase hex digits. */
  readonly userId: string
  /** The platform the consumer counts under (its id starts with the first letter). @default 'web' */
  readonly source?: ConsumerPlatform
  /** Life of the token, in seconds. @default 172800 (2 days) */
  readonly expiresInSec?: number
}

export type ProducerState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface ProducerEvents {
  /** The connection's state changed. */
  state: [state: ProducerState]
  /** A connection attempt or the connection failed, or a listener threw (LISTENER); the producer goes on unless the state is `closed`. */
  error: [error: SnapperError]
}
