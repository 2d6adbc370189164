import type { HttpRequest, HttpResponse } from 'uWebSockets.js'
import type { Logger } from '../../log.js'
import type { Authorization, EngineHandlers, EngineOptions, Handshake } from './api.js'
import { ENGINE_ERRORS, type Refusal, readHeaders, remoteAddressOf } from './http.js'
import { RatePerSecond } from '../../rate.js'
import { TrustedProxies } from './peer.js'

/**
 * Whether an accepted handshake may open: undefined at once (no prepare
 * hook), else once prepare() settles, false if it failed.
 */
export type Preparation = Promise<boolean> | undefined

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
  readonly #handshakeRate: RatePerSecond
  #rateLimited = 0
  #full = 0
  /** Accepted handshakes whose prepare() has not settled: they count against maxSessions. */
  #preparing = 0

  constructor(options: EngineOptions, handlers: EngineHandlers<T>, log: Logger, host: AdmissionHost) {
    this.#options = options
    this.#handlers = handlers
    this.#log = log
    this.#host = host
    this.#proxies = new TrustedProxies(options.trustedProxies)
    this.#handshakeRate = new RatePerSecond(options.maxHandshakesPerAddressPerSec)
  }

  /** Handshakes refused for passing maxHandshakesPerAddressPerSec. */
  get rateLimited(): number {
    return this.#rateLimited
  }

  /** Handshakes refused with 503 because the node held maxSessions sessions. */
  get full(): number {
    return this.#full
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
    if (!this.#handshakeRate.admits(remoteAddress)) {
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
   * none (open at once), else resolves true once the session may open,
   * false if the hook failed (a bug, logged). Never rejects. The engine
   * aborts `abandoned` when the client goes away meanwhile.
   */
  prepare(data: T, abandoned: AbortSignal): Preparation {
    const prepare = this.#handlers.prepare
    if (prepare === undefined) return undefined
    this.#preparing++
    let prepared: Promise<void>
    try {
      prepared = prepare.call(this.#handlers, data, abandoned)
    } catch (err) {
      prepared = Promise.reject(err)
    }
    return prepared.then(
      () => {
        this.#preparing--
        return true
      },
      (err: unknown) => {
        this.#preparing--
        this.#log.error({ err }, 'engine.io prepare hook failed')
        return false
      },
    )
  }

  /** Why a prepared handshake may not open after all (its hook failed, or the engine closed meanwhile). */
  unpreparedRefusal(isReady: boolean): Refusal | undefined {
    if (!isReady) return INTERNAL_ERROR
    return this.#host.isClosed ? this.paced(ENGINE_ERRORS.SHUTTING_DOWN) : undefined
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
