import type { HttpRequest, HttpResponse } from 'uWebSockets.js'
import type { Logger } from '../../log.js'
import {
  type Abandonment,
  type Authorization,
  type EngineHandlers,
  type EngineOptions,
  type Handshake,
  TryAgainLater,
} from './api.js'
import { ENGINE_ERRORS, type Refusal, readHeaders, remoteAddressOf } from './http.js'
import { addressGroup } from '../../client-address.js'
import { RatePerSecond } from '../../rate.js'
import { TrustedProxies } from './peer.js'

/**
 * How an accepted handshake's prepare() ended: it may open (`ready`), the
 * hook failed (`failed`, a bug), it took longer than the engine's
 * prepareTimeout (`late`: the handshake is refused at once, and the
 * admission abandons it itself once the hook settles), or the hook said
 * the session cannot be served now (`{ refused }`, from TryAgainLater).
 */
export type Prepared = 'ready' | 'failed' | 'late' | { readonly refused: Refusal }

/** Undefined: open at once (no prepare hook); else how prepare() ended. Never rejects. */
export type Preparation = Promise<Prepared> | undefined

export type Decision<T> =
  { readonly ok: true; readonly id: string; readonly data: T } | ({ readonly ok: false } & Refusal)

export const INTERNAL_ERROR: Refusal = { status: 500, code: 3, message: 'Internal error' }

/** What admission needs to know of the engine it admits into. */
export interface AdmissionHost {
  readonly isClosed: boolean
  /** Live sessions by id: a handshake under a live id replaces it and needs no room. */
  readonly sessions: ReadonlyMap<string, unknown>
}

/**
 * Whether a handshake becomes a session: the per-address rate, the
 * application's hooks (authorize, prepare, abandon; each guarded, a throw is
 * a logged bug), then the engine's own bounds. The decision is synchronous,
 * so that an accepted websocket is upgraded inside uWS's upgrade handler.
 */
export class Admission<T> {
  readonly #options: EngineOptions
  readonly #handlers: EngineHandlers<T>
  readonly #log: Logger
  readonly #host: AdmissionHost
  readonly #proxies: TrustedProxies
  /** maxHandshakesPerAddressPerSec; undefined when off (the default), so no handshake computes its address's group. */
  readonly #handshakeRate: RatePerSecond | undefined
  #rateLimited = 0
  #full = 0
  #late = 0
  /** Accepted handshakes whose prepare() has not settled: they count against maxSessions. */
  #preparing = 0

  constructor(options: EngineOptions, handlers: EngineHandlers<T>, log: Logger, host: AdmissionHost) {
    this.#options = options
    this.#handlers = handlers
    this.#log = log
    this.#host = host
    this.#proxies = new TrustedProxies(options.trustedProxies)
    const { maxHandshakesPerAddressPerSec } = options
    this.#handshakeRate =
      maxHandshakesPerAddressPerSec > 0 ? new RatePerSecond(maxHandshakesPerAddressPerSec) : undefined
  }

  /** Handshakes refused for passing maxHandshakesPerAddressPerSec. */
  get rateLimited(): number {
    return this.#rateLimited
  }

  /** Addresses counted in this second's window of maxHandshakesPerAddressPerSec. */
  get rateAddresses(): number {
    return this.#handshakeRate?.size ?? 0
  }

  /** Handshakes refused with 503 because the node held maxSessions sessions. */
  get full(): number {
    return this.#full
  }

  /** Handshakes refused because their prepare() took longer than prepareTimeout.ms. */
  get late(): number {
    return this.#late
  }

  /** The rate, the application's authorize hook, then the engine's bounds. */
  authorize(res: HttpResponse, req: HttpRequest, query: URLSearchParams): Decision<T> {
    const headers = readHeaders(req)
    const remoteAddress = this.#proxies.clientAddress(
      remoteAddressOf(res),
      headers['x-forwarded-for'] ?? '',
      headers['x-real-ip'] ?? '',
    )
    // Before the hook: a flood is refused without verifying its tokens. The next window opens within 1 s.
    const rate = this.#handshakeRate
    if (rate && !rate.admits(addressGroup(remoteAddress, this.#options.perAddressIpv6PrefixBits))) {
      this.#rateLimited++
      return { ok: false, ...ENGINE_ERRORS.TOO_MANY_HANDSHAKES, retryAfterMs: 1000 }
    }
    const handshake: Handshake = { query, headers, remoteAddress }
    try {
      return this.#bound(this.#handlers.authorize(handshake))
    } catch (err) {
      this.#log.error({ err }, 'engine.io authorize hook failed')
      return { ok: false, ...INTERNAL_ERROR }
    }
  }

  /**
   * Runs the prepare hook of an accepted handshake: undefined if there is
   * none (open at once), else how it ended (Prepared). The engine aborts
   * `abandoned` when the client goes away meanwhile, and this does at
   * prepareTimeout.ms: the hook may stop short either way. A handshake stays
   * counted against maxSessions until its hook settles, late or not: what
   * the hook took (the consumer's outbox) lives until then.
   */
  prepare(data: T, abandoned: Abandonment): Preparation {
    const prepare = this.#handlers.prepare
    if (prepare === undefined) return undefined
    this.#preparing++
    let prepared: Promise<void>
    try {
      prepared = prepare.call(this.#handlers, data, abandoned)
    } catch (err) {
      prepared = Promise.reject(err)
    }
    const settled = prepared.then(
      (): Prepared => {
        this.#preparing--
        return 'ready'
      },
      (err: unknown): Prepared => {
        this.#preparing--
        if (err instanceof TryAgainLater) return { refused: err.refusal }
        this.#log.error({ err }, 'engine.io prepare hook failed')
        return 'failed'
      },
    )
    const timeoutMs = this.#options.prepareTimeout?.ms
    if (timeoutMs === undefined) return settled
    return new Promise<Prepared>(resolve => {
      const timer = setTimeout(() => {
        this.#late++
        abandoned.abort() // the hook may stop short, as for a client gone
        resolve('late')
        // The caller answers the client now; what the hook took is let go once it has it.
        void settled.then(() => this.abandon(data))
      }, timeoutMs)
      void settled.then(outcome => {
        clearTimeout(timer)
        resolve(outcome) // ignored once late
      })
    })
  }

  /** Why a prepared handshake may not open after all: its hook failed, refused or was late, or the engine closed meanwhile. */
  unpreparedRefusal(outcome: Prepared): Refusal | undefined {
    if (outcome === 'failed') return INTERNAL_ERROR
    if (typeof outcome === 'object') return this.paced(outcome.refused)
    const { prepareTimeout } = this.#options
    if (outcome === 'late' && prepareTimeout) return this.paced(prepareTimeout.refusal)
    return this.#host.isClosed ? this.paced(ENGINE_ERRORS.SHUTTING_DOWN) : undefined
  }

  /**
   * A prepared handshake that will not open (refused, or its client gone):
   * abandoned now, unless it was late, which prepare() abandons itself once
   * its hook settles (the hook may still hold what it took).
   */
  release(data: T, outcome: Prepared): void {
    if (outcome !== 'late') this.abandon(data)
  }

  /** A 503 (or the hook's 429) says when to come back, if the engine was told. */
  paced(refusal: Refusal): Refusal {
    const { retryAfterMs } = this.#options
    return retryAfterMs === undefined ? refusal : { ...refusal, retryAfterMs }
  }

  /** An accepted handshake that will not open: the application lets go of what authorize gave it. */
  abandon(data: T): void {
    try {
      this.#handlers.abandon?.(data)
    } catch (err) {
      this.#log.error({ err }, 'engine.io abandon hook failed')
    }
  }

  /**
   * The engine's say after the hook's: not while shutting down, not past
   * maxSessions, handshakes still preparing included (a replacement is fine).
   */
  #bound(auth: Authorization<T>): Decision<T> {
    if (!auth.ok)
      return auth.status === 503 || auth.status === 429 ? { ok: false, ...this.paced(auth) } : auth
    const { sessions, isClosed } = this.#host
    const refusal = isClosed
      ? ENGINE_ERRORS.SHUTTING_DOWN
      : !sessions.has(auth.id) && sessions.size + this.#preparing >= this.#options.maxSessions
        ? ENGINE_ERRORS.TOO_MANY_SESSIONS
        : undefined
    if (refusal === undefined) return auth
    if (refusal === ENGINE_ERRORS.TOO_MANY_SESSIONS) this.#full++
    this.abandon(auth.data)
    return { ok: false, ...this.paced(refusal) }
  }
}
