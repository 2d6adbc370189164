import type { Config } from '../config/defaults.js'
import type { Logger } from '../log.js'
import type { RedisClients } from '../redis/connect.js'
import type { Keys } from '../redis/keys.js'
import type { Commands } from '../redis/scripts.js'
import { parseCursor } from './cursor.js'
import { parseTrackId } from './tracking.js'
import {
  postEscalation,
  webhookAddress,
  type EscalationPayload,
  type WebhookResult,
  type WebhookTarget,
} from './webhook.js'

export interface EscalatorOptions extends WebhookTarget {
  /** How long failed attempts are retried after the escalation fell due, in seconds. */
  readonly retrySec: number
  /** How often the node looks for escalations that fell due, in ms. */
  readonly pollMs: number
  /**
   * Escalations the node has in hand at most (each one request at a time): a
   * poll claims what room is left, so one slow receiver holds up to this many
   * requests, and the others (and other nodes) go on.
   */
  readonly maxInFlight: number
  /** How long past its due time an escalation may still be attempted (escalationWindowMs). */
  readonly windowMs: number
  /** How long a tracked message lives, in seconds (its track hash expires then). */
  readonly ttlSec: number
}

/** The escalator's options from the config. */
export function escalatorOptions(
  config: Pick<
    Config,
    | 'escalationWebhookUrl'
    | 'escalationWebhookSecret'
    | 'escalationTimeoutMs'
    | 'escalationRetrySec'
    | 'escalationPollMs'
    | 'escalationMaxInFlight'
    | 'messageTtlSec'
  >,
): EscalatorOptions {
  return {
    ...webhookAddress(config.escalationWebhookUrl),
    secret: config.escalationWebhookSecret,
    timeoutMs: config.escalationTimeoutMs,
    retrySec: config.escalationRetrySec,
    pollMs: config.escalationPollMs,
    maxInFlight: config.escalationMaxInFlight,
    windowMs: escalationWindowMs(config),
    ttlSec: config.messageTtlSec,
  }
}

/** A lease's room past the request and the writes around it, ms. */
const LEASE_MARGIN_MS = 1000
/** A claim's lease: one request, the writes around it, and margin for a busy event loop. */
const leaseMsOf = (timeoutMs: number): number => 2 * timeoutMs + LEASE_MARGIN_MS

/**
 * How long after it fell due an escalation may still be attempted: the poll
 * that finds it, retries up to retrySec (the last one clamped to its end),
 * a lease lost with a node, and the last request itself. The message's track
 * hash must live that long past the escalation's due time, or the escalator
 * could no longer see whether it was acknowledged.
 */
export function escalationWindowMs(
  config: Pick<Config, 'escalationRetrySec' | 'escalationPollMs' | 'escalationTimeoutMs'>,
): number {
  const { escalationRetrySec, escalationPollMs, escalationTimeoutMs } = config
  return escalationRetrySec * 1000 + escalationPollMs + leaseMsOf(escalationTimeoutMs) + escalationTimeoutMs
}

/** Counters for /metrics (`snapper_escalations_total{result}`). */
export interface EscalationCounters {
  /** The webhook answered 2xx. */
  sent: number
  /** An attempt failed (no answer, not 2xx); it is tried again later. */
  failed: number
  /** Given up after retrySec (or never stored). */
  abandoned: number
  /** Acknowledged in time: no webhook. */
  acknowledged: number
  /** Redis commands of the escalator that failed (the lease makes the work come back). */
  redisErrors: number
}

/** Retry delays double from 1 s up to 1 min. */
const RETRY_BASE_MS = 1000
const RETRY_MAX_MS = 60_000

/** One claimed escalation (escalation_claim-2.lua). */
interface Claim {
  readonly id: string
  readonly message: string
  /** When it fell due, ms (Redis' clock). */
  readonly dueAt: number
  /** Attempts that failed so far. */
  readonly attempts: number
  /** The claim's lease end: our fence for escalation_done / escalation_retry. */
  readonly leaseEnd: number
  /** Redis' clock at the claim, ms. */
  readonly now: number
  /**
   * The latest this node may start the request (performance.now()): the
   * claim was sent a lease before its end, and the request and the writes
   * after it need timeoutMs and the lease's margin.
   */
  readonly postBy: number
}

/**
 * Runs on every node with a webhook configured: claims the escalations that
 * fell due (escalation_claim-2.lua leases each to one node), checks the
 * message's track hash, and POSTs those that nobody acknowledged.
 *
 *   due ──claim (lease)──▶ acked? ──yes──▶ done
 *                            │ no
 *                            ▼
 *                     POST ──2xx──▶ mark escalated (track hash), done
 *                            │ failed
 *                            ▼
 *          past retrySec? ──yes──▶ done (abandoned)
 *                            │ no
 *                            ▼
 *                 due again after a backoff
 *
 * A node that dies holding a claim lets its lease run out; another node then
 * claims it. The track hash's `e` is set before the claim is removed, so a
 * node that takes over after a send whose removal was lost sends nothing.
 * Sent twice only if a node dies between the receiver's 2xx and that write:
 * receivers deduplicate by `id`. A claim whose lease is nearly over before
 * its request starts (its reads waited on Redis) is left to the next claim,
 * which may already be sending it.
 *
 * On a Redis Cluster with masters that do not answer (RedisClients.mastersDown),
 * nothing waits on them: no claim while the escalations' master does not answer,
 * and an escalation whose track hash is on such a master is left claimed: it
 * falls due again when its lease ends (docs/RELIABILITY.md, "One stalled master").
 */
export class Escalator {
  readonly counters: EscalationCounters = {
    sent: 0,
    failed: 0,
    abandoned: 0,
    acknowledged: 0,
    redisErrors: 0,
  }
  readonly #redis: Commands
  readonly #isReadyFor: RedisClients['isReadyFor']
  readonly #keys: Keys
  readonly #options: EscalatorOptions
  readonly #log: Logger
  readonly #send: (target: WebhookTarget, payload: EscalationPayload) => Promise<WebhookResult>
  readonly #leaseMs: number
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  /** The escalations being handled: a poll does not wait for them (a request may take timeoutMs). */
  readonly #inHand = new Set<Promise<void>>()
  #stopped = false

  constructor(
    redis: Pick<RedisClients, 'commands' | 'isReadyFor'>,
    keys: Keys,
    options: EscalatorOptions,
    log: Logger,
    send = postEscalation,
  ) {
    this.#redis = redis.commands
    this.#isReadyFor = (...keys) => redis.isReadyFor(...keys)
    this.#keys = keys
    this.#options = options
    this.#log = log
    this.#send = send
    this.#leaseMs = leaseMsOf(options.timeoutMs)
  }

  /** Starts polling every pollMs. */
  start(): void {
    this.#schedule(0)
  }

  /** Stops polling; resolves once the escalations in hand are finished (each bounded by timeoutMs). */
  async stop(): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    await this.#running
    await Promise.all(this.#inHand)
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#running = this.#poll().finally(() => (this.#running = undefined))
    }, delayMs)
    this.#timer.unref()
  }

  async #poll(): Promise<void> {
    let isFull = false
    try {
      const room = this.#options.maxInFlight - this.#inHand.size
      // Its keys' master does not answer: a claim would wait on it, or be refused (a Cluster that is down).
      if (room > 0 && this.#isReadyFor(this.#keys.escalations.due))
        isFull = (await this.#claim(room)).length === room
    } catch (err) {
      this.counters.redisErrors++
      this.#log.warn({ err }, 'escalation claim failed')
    }
    // More may be due: claim again at once while there is room for them.
    this.#schedule(isFull && this.#inHand.size < this.#options.maxInFlight ? 0 : this.#options.pollMs)
  }

  /** Claims what fell due and handles it; resolves with the number claimed once all are handled. */
  async runOnce(): Promise<number> {
    const handled = await this.#claim(this.#options.maxInFlight)
    await Promise.all(handled)
    return handled.length
  }

  /** Claims at most `max` of what fell due and starts handling each; resolves with their handling. */
  async #claim(max: number): Promise<Promise<void>[]> {
    const { due, info } = this.#keys.escalations
    const postBy = performance.now() + this.#leaseMs - this.#options.timeoutMs - LEASE_MARGIN_MS
    const [now, leaseEnd, ...flat] = await this.#redis.escalationClaim(
      due,
      info,
      this.#leaseMs,
      max,
      this.#options.windowMs, // both keys are kept that long past the latest pending one
    )
    const claims: Claim[] = []
    for (let i = 0; i + 3 < flat.length; i += 4) {
      claims.push({
        id: String(flat[i]),
        message: String(flat[i + 1]),
        dueAt: Number(flat[i + 2]),
        attempts: Number(flat[i + 3]),
        leaseEnd: Number(leaseEnd),
        now: Number(now),
        postBy,
      })
    }
    return claims.map(claim => {
      const handling = this.#handle(claim).finally(() => this.#inHand.delete(handling))
      this.#inHand.add(handling)
      return handling
    })
  }

  async #handle(claim: Claim): Promise<void> {
    try {
      const parsed = parseTrackId(claim.id)
      if (!parsed) {
        this.counters.abandoned++
        return await this.#done(claim)
      }
      const track = this.#keys.track(parsed.room, parsed.nonce)
      // Its master does not answer: a read would hold a place in maxInFlight until it does, and each
      // later claim of it one more. Left claimed, it falls due again when this lease ends.
      if (!this.#isReadyFor(track)) return await this.#leaveOrAbandon(claim)
      const [stored, acks, escalated] = await this.#redis.hmget(track, 's', 'n', 'e')
      if (Number(acks) > 0) {
        this.counters.acknowledged++
        return await this.#done(claim)
      }
      if (escalated != null) return await this.#done(claim) // sent by a node whose removal was lost
      // Not stored (yet): its append failed, or is still on its way (another server of a cluster). Not
      // expired: a message with an escalation pending keeps its track hash (Tracking.track).
      if (stored == null) return await this.#retryOrAbandon(claim, 'message not stored')
      if (performance.now() > claim.postBy) {
        // The reads took most of the lease (Redis stalled under them): another claim may send it now.
        this.#log.warn(
          { id: claim.id },
          'escalation claim nearly over before its request, left to the next claim',
        )
        return
      }
      const publishedAt = parseCursor(stored).ms
      const result = await this.#send(this.#options, {
        id: claim.id,
        room: parsed.room,
        message: claim.message,
        publishedAt,
      })
      if (!result.ok) {
        this.counters.failed++
        return await this.#retryOrAbandon(claim, result.reason)
      }
      this.counters.sent++
      // The track hash keeps its own end of life: it lives as long as the message.
      await this.#redis
        .multi()
        .hset(track, 'e', Date.now())
        .pexpireat(track, publishedAt + this.#options.ttlSec * 1000)
        .exec()
      await this.#done(claim)
    } catch (err) {
      // Redis failed midway: the claim's lease runs out and this escalation falls due again.
      this.counters.redisErrors++
      this.#log.warn({ err, id: claim.id }, 'escalation failed, retried after its lease')
    }
  }

  /** Leaves a claim to lapse (it falls due again), unless its retry window is over. */
  async #leaveOrAbandon(claim: Claim): Promise<void> {
    if (claim.now - claim.dueAt < this.#options.retrySec * 1000) return
    this.counters.abandoned++
    this.#log.warn(
      { id: claim.id, attempts: claim.attempts, reason: 'redis master not serving' },
      'escalation abandoned',
    )
    await this.#done(claim)
  }

  async #retryOrAbandon(claim: Claim, reason: string): Promise<void> {
    const { due, info } = this.#keys.escalations
    const leftMs = this.#options.retrySec * 1000 - (claim.now - claim.dueAt)
    if (leftMs <= 0) {
      this.counters.abandoned++
      this.#log.warn({ id: claim.id, attempts: claim.attempts + 1, reason }, 'escalation abandoned')
      return this.#done(claim)
    }
    // The last attempt comes at the window's end, not a whole backoff step past it.
    const delayMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** claim.attempts, leftMs)
    // Warn once per escalation: a webhook that is down fails every attempt, and the metrics count them.
    const level = claim.attempts === 0 ? 'warn' : 'debug'
    this.#log[level](
      { id: claim.id, attempts: claim.attempts + 1, reason, retryInMs: delayMs },
      'escalation failed',
    )
    await this.#redis.escalationRetry(due, info, claim.id, claim.leaseEnd, delayMs)
  }

  async #done(claim: Claim): Promise<void> {
    const { due, info } = this.#keys.escalations
    await this.#redis.escalationDone(due, info, claim.id, claim.leaseEnd)
  }
}
