/**
 * The shapes of the broker's results that the producer hands out typed
 * (docs/producer-protocol.md). A result of another shape (a broker of
 * another version, a man in the middle) is refused at this boundary with
 * PROTOCOL rather than handed to the application as a type it is not.
 */
import { SDK_ERRORS, SnapperError } from '../errors.js'
import type { ConsumerCounts, Receipt, ReceiptAck, Tracked } from './types.js'

/** A check of one result, and what it should have been, for the error. */
export interface ResultShape<T> {
  readonly is: (value: unknown) => value is T
  readonly described: string
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0

const PLATFORMS: readonly unknown[] = ['web', 'ios', 'android']

const isReceiptAck = (value: unknown): value is ReceiptAck =>
  isRecord(value) &&
  typeof value.consumerId === 'string' &&
  typeof value.userId === 'string' &&
  PLATFORMS.includes(value.platform) &&
  Number.isFinite(value.ackedAt)

/** A count of stored messages; the broker answers 0 as null (as the original did). */
export const STORED: ResultShape<number | null> = {
  is: (value): value is number | null => value === null || isCount(value),
  described: 'a count or null',
}

/** Joined (1), or in already / not in (0, answered as null). */
export const JOINED: ResultShape<1 | null> = {
  is: (value): value is 1 | null => value === 1 || value === null,
  described: '1 or null',
}

export const CONSUMER_COUNTS: ResultShape<ConsumerCounts> = {
  is: (value): value is ConsumerCounts =>
    isRecord(value) &&
    isCount(value.length) &&
    isCount(value.android) &&
    isCount(value.ios) &&
    isCount(value.web),
  described: '{length, android, ios, web} (counts)',
}

export const TRACKED: ResultShape<Tracked> = {
  is: (value): value is Tracked => isRecord(value) && typeof value.id === 'string',
  described: '{id: string}',
}

export const RECEIPT: ResultShape<Receipt> = {
  is: (value): value is Receipt =>
    isRecord(value) &&
    Array.isArray(value.acked) &&
    value.acked.every(isReceiptAck) &&
    isCount(value.moreAcks) &&
    typeof value.escalated === 'boolean',
  described: '{acked: [{consumerId, userId, platform, ackedAt}], moreAcks, escalated}',
}

/** `value` as `shape`'s type, or a PROTOCOL error naming the method. */
export function checked<T>(method: string, shape: ResultShape<T>, value: unknown): T {
  if (shape.is(value)) return value
  const text = JSON.stringify(value) ?? String(value)
  throw new SnapperError(
    SDK_ERRORS.PROTOCOL,
    `the broker's answer to ${method} is not ${shape.described}: ${text.length > 100 ? `${text.slice(0, 100)}…` : text}`,
  )
}
