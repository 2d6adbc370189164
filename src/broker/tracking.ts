import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { platformOf } from '../auth/token.js'
import { SnapperError } from '../errors.js'
import type { Keys } from '../redis/keys.js'
import type { Commands } from '../redis/scripts.js'
import type { Entry } from './entry.js'
import type { RoomLog } from './room-log.js'

/** One consumer's acknowledgement of a tracked message. */
export interface AckReceipt {
  readonly consumerId: string
  readonly userId: string
  readonly platform: 'android' | 'ios' | 'web'
  /** When its node received the ack, ms since the epoch. */
  readonly ackedAt: number
}

/**
 * What `receipt` answers: the consumers that acknowledged the message (the
 * first trackMaxReceipts of them), how many more acks came, and whether it
 * was escalated.
 */
export interface Receipt {
  readonly acked: readonly AckReceipt[]
  /** Acks past trackMaxReceipts: counted, not listed (a consumer that acked again after a reconnect counts again). */
  readonly moreAcks: number
  readonly escalated: boolean
}

/** Counters for /metrics. */
export interface TrackingCounters {
  /** Tracked messages stored. */
  tracked: number
  /** Acknowledgements of tracked messages recorded as receipts. */
  receipts: number
  /** Acknowledgements past a message's trackMaxReceipts: counted in its receipt, not recorded. */
  unlistedAcks: number
}

/**
 * A receipt write that failed for a reason that passes (a cluster's failover:
 * ioredis gives up on the dead master after about 1.7 s) is sent again, 100 ms
 * doubling up to 2 s apart, for trackReceiptRetrySec after the ack: a failover
 * takes seconds, and the consumer does not ack again (its cursor moved on).
 */
const RECEIPT_BACKOFF_FIRST_MS = 100
const RECEIPT_BACKOFF_MAX_MS = 2000

/** Random bytes of a track nonce: 16 base64url characters. */
const NONCE_BYTES = 12
const NONCE = /^[A-Za-z0-9_-]{16}$/

/**
 * A track id: `<nonce>.<room in base64url>`. Opaque to producers; the room in
 * it names the slot of the track hash, so a receipt is one read on one slot.
 */
export function formatTrackId(room: string, nonce: string): string {
  return `${nonce}.${Buffer.from(room).toString('base64url')}`
}

/** The room and nonce of a track id, or undefined if it is not one we made. */
export function parseTrackId(id: string): { room: string; nonce: string } | undefined {
  const dot = id.indexOf('.')
  const nonce = id.slice(0, dot)
  const encoded = id.slice(dot + 1)
  if (dot < 0 || !NONCE.test(nonce) || encoded === '') return undefined
  const room = Buffer.from(encoded, 'base64url').toString()
  // Canonical form only: garbage that base64url decoding would tolerate names no track.
  return Buffer.from(room).toString('base64url') === encoded ? { room, nonce } : undefined
}

/**
 * Tracked messages: delivered like any publish, and each consumer's ack of
 * one is recorded as a receipt. Costs Redis work for tracked messages only:
 * their nonce travels with them through the room log and the announcements
 * (room_append-4n.lua), so the ack of an untracked batch asks nothing of Redis.
 *
 *   track ──▶ [escalation_schedule on {esc}] ──▶ room_append (+ track hash) on {r:room}
 *   ack of a tracked entry ──▶ track_ack on {r:room} (the track hash)
 *   receipt(id) ──▶ HGETALL of the track hash (at most trackMaxReceipts receipts)
 *
 * The escalation is sent before the append: on one Redis (one connection, in
 * order) a message is never stored without it; one whose append failed is
 * dropped when due (escalation.ts). On a cluster the two go to different
 * servers: if only the append succeeds, the producer gets an error, as for
 * any publish that fails midway.
 */
export class Tracking {
  readonly counters: TrackingCounters = { tracked: 0, receipts: 0, unlistedAcks: 0 }
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #log: RoomLog
  readonly #ttlSec: number
  readonly #canEscalate: boolean
  readonly #escalationWindowMs: number
  readonly #maxReceipts: number
  readonly #receiptRetryMs: number
  readonly #isPassing: (err: unknown) => boolean

  constructor(
    redis: Commands,
    keys: Keys,
    log: RoomLog,
    options: {
      /** How long a message (and its receipts) lives, in seconds. */
      readonly ttlSec: number
      /** An escalation webhook is configured: `escalateAfterMs` is accepted. */
      readonly canEscalate: boolean
      /** How long after it fell due an escalation may still be attempted (escalationWindowMs). */
      readonly escalationWindowMs: number
      /** Receipts a message records at most; later acks are counted only. */
      readonly maxReceipts: number
      /** How long a receipt write that fails for a reason that passes is sent again, in ms (trackReceiptRetrySec). */
      readonly receiptRetryMs: number
      /** Whether a command that failed this way may succeed if sent again (RedisClients.isPassing). */
      readonly isPassing: (err: unknown) => boolean
    },
  ) {
    this.#redis = redis
    this.#keys = keys
    this.#log = log
    this.#ttlSec = options.ttlSec
    this.#canEscalate = options.canEscalate
    this.#escalationWindowMs = options.escalationWindowMs
    this.#maxReceipts = options.maxReceipts
    this.#receiptRetryMs = options.receiptRetryMs
    this.#isPassing = options.isPassing
  }

  /**
   * Stores a tracked message; resolves with its id once it is stored (and its
   * escalation scheduled). `escalateAfterMs` must be a whole number of ms, at
   * least 1 and less than the message's life. Like RoomLog.appendAll, the
   * Redis commands are issued before this returns (so a connection's publishes
   * keep their order); the escalation goes first.
   */
  track(room: string, message: string, escalateAfterMs?: number): Promise<string> {
    const nonce = randomBytes(NONCE_BYTES).toString('base64url')
    const id = formatTrackId(room, nonce)
    let scheduled: Promise<unknown> | undefined
    /** When the escalation's last attempt is over, from now: its keys, and the track hash, must live that long. */
    let escalationEndMs = 0
    if (escalateAfterMs !== undefined) {
      if (!this.#canEscalate) return Promise.reject(new SnapperError('NO_ESCALATION'))
      if (
        !Number.isSafeInteger(escalateAfterMs) ||
        escalateAfterMs < 1 ||
        escalateAfterMs >= this.#ttlSec * 1000
      )
        return Promise.reject(new SnapperError('INVALID_PARAMS'))
      const { due, info } = this.#keys.escalations
      escalationEndMs = escalateAfterMs + this.#escalationWindowMs
      scheduled = this.#redis.escalationSchedule(due, info, id, escalateAfterMs, message, escalationEndMs)
    }
    let stored: Promise<unknown> = this.#log.appendTracked(room, message, nonce)
    // The track hash says whether the message was acknowledged: it must outlive its escalation's
    // attempts, even past the message's own life when the escalation falls due near its end.
    if (escalationEndMs > this.#ttlSec * 1000)
      stored = stored.then(() => this.#redis.pexpire(this.#keys.track(room, nonce), escalationEndMs))
    return Promise.all([scheduled, stored]).then(() => {
      this.counters.tracked++
      return id
    })
  }

  /**
   * Who acknowledged the message, and whether it was escalated; UNKNOWN_ID
   * once it expired (or never was). One HGETALL of at most trackMaxReceipts
   * receipts and four fields.
   */
  async receipt(id: string): Promise<Receipt> {
    const parsed = parseTrackId(id)
    if (!parsed) throw new SnapperError('UNKNOWN_ID')
    const fields = await this.#redis.hgetall(this.#keys.track(parsed.room, parsed.nonce))
    if (fields.s === undefined) throw new SnapperError('UNKNOWN_ID')
    const acked: AckReceipt[] = []
    for (const [field, value] of Object.entries(fields)) {
      if (!field.startsWith('c:')) continue
      const consumerId = field.slice(2)
      const [userId = '', ackedAt = '0'] = value.split(' ')
      acked.push({ consumerId, userId, platform: platformOf(consumerId), ackedAt: Number(ackedAt) })
    }
    acked.sort((a, b) => a.ackedAt - b.ackedAt)
    return { acked, moreAcks: Number(fields.m ?? 0), escalated: fields.e !== undefined }
  }

  /**
   * Records a consumer's ack of the tracked entries of a batch (the caller
   * checks `batch.hasTracked` first). One script call per tracked entry, sent
   * at once: the receipt is readable within a round trip of the ack. A call
   * that fails for a reason that passes is sent again for trackReceiptRetrySec
   * (track_ack-1.lua records a consumer once); rejects once one failed for good.
   */
  recordAcks(
    consumerId: string,
    userId: string,
    entries: readonly Entry[],
    ackedAt: number,
  ): Promise<unknown> {
    const receipt = `${userId} ${ackedAt}`
    const writes: Promise<unknown>[] = []
    for (const entry of entries) {
      if (entry.track === undefined) continue
      const track = this.#keys.track(entry.room, entry.track)
      writes.push(
        this.#untilWritten(() => this.#redis.trackAck(track, consumerId, receipt, this.#maxReceipts)).then(
          outcome => {
            if (outcome === 1) this.counters.receipts++
            else if (outcome === -1) this.counters.unlistedAcks++
          },
        ),
      )
    }
    return Promise.all(writes)
  }

  async #untilWritten(write: () => Promise<number>): Promise<number> {
    const giveUpAt = Date.now() + this.#receiptRetryMs
    for (
      let backoffMs = RECEIPT_BACKOFF_FIRST_MS;
      ;
      backoffMs = Math.min(2 * backoffMs, RECEIPT_BACKOFF_MAX_MS)
    ) {
      try {
        return await write()
      } catch (err) {
        if (!this.#isPassing(err) || Date.now() + backoffMs > giveUpAt) throw err
      }
      await sleep(backoffMs)
    }
  }
}
