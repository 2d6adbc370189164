import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js'
import { guard } from '../../guard.js'
import { type Logger, silentLogger } from '../../log.js'
import { BoundedLog } from '../../bounded-log.js'
import { BufferedBytes } from './buffered-bytes.js'
import { Heartbeats } from './heartbeat.js'
import { Admission, type AdmissionHost, INTERNAL_ERROR, type Prepared } from './admission.js'
import { Abandonment, type Engine, type EngineHandlers, type EngineOptions, type Session } from './api.js'
import {
  Cors,
  answerFailedRequest,
  ENGINE_ERRORS,
  type Refusal,
  type RequestInfo,
  asksB64,
  readRequest,
  revisionOf,
  writeEmpty,
  writeRefusal,
} from './http.js'
import type { Revision } from './packet.js'
import { PollingTransport } from './polling.js'
import { InputBudgets } from './input-budgets.js'
import { EngineSession, type SessionHost } from './session.js'
import { TOO_MUCH_INPUT, TOO_SLOW, TOO_SLOW_FOR_NODE, type TransportOwner } from './transport.js'
import { type UpgradeHost, type UpgradeRoute, Upgrades } from './upgrade.js'
import { loadUws } from './uws.js'
import type { WebSocketTransport } from './websocket.js'

export type {
  Abandoned,
  Authorization,
  Engine,
  EngineHandlers,
  EngineOptions,
  Handshake,
  Session,
} from './api.js'
export { TryAgainLater } from './api.js'
export { EncodedMessage, encodeMessage } from './packet.js'
export { assertNativeUws, loadUws } from './uws.js'

/** Where a request goes: an upgrade takes the routes of UpgradeRoute only. */
type Route<T> =
  | UpgradeRoute<T>
  | { readonly kind: 'preflight' | 'bad-method' }
  | { readonly kind: 'poll' | 'post'; readonly session: EngineSession<T>; readonly query: URLSearchParams }

const refuse = (refusal: Refusal): UpgradeRoute<never> => ({ kind: 'refuse', refusal })

/**
 * Serves Engine.IO revisions 3 and 4 on `app` under `options.path` (prefix
 * match: `/websocket/...`, not `/websocket`), both transports and the upgrade.
 * Nothing is served before this returns; the caller listens.
 */
export function attachEngine<T>(
  app: TemplatedApp,
  options: EngineOptions,
  handlers: EngineHandlers<T>,
  log: Logger = silentLogger,
): Engine<T> {
  loadUws() // refuses to run on the JavaScript fallback
  if (!options.path.startsWith('/')) throw new Error(`engine.io path must start with '/': ${options.path}`)
  return new EngineServer(app, options, handlers, log)
}

class EngineServer<T> implements Engine<T>, SessionHost<T>, AdmissionHost, UpgradeHost<T> {
  readonly options: EngineOptions
  readonly heartbeats: Heartbeats
  readonly #handlers: EngineHandlers<T>
  readonly #log: Logger
  readonly #cors: Cors
  readonly #sessions = new Map<string, EngineSession<T>>()
  readonly #lingering = new Map<string, EngineSession<T>>()
  readonly #admission: Admission<T>
  readonly #inputBudgets: InputBudgets
  #isClosed = false
  #inputLimited = 0
  #tooSlow = 0
  #replacedClosesDropped = 0
  readonly buffered: BufferedBytes
  readonly #cutLog: BoundedLog

  constructor(app: TemplatedApp, options: EngineOptions, handlers: EngineHandlers<T>, log: Logger) {
    this.options = options
    this.heartbeats = new Heartbeats(options)
    this.#handlers = handlers
    this.#log = log
    this.#cors = new Cors(options.corsOrigins)
    this.#admission = new Admission(options, handlers, log, this)
    // A socket holding under a sixteenth of maxBackpressureBytes is never cut for the total's sake. A reader's
    // frames go to the kernel, whose send buffer grows to megabytes: uWS holds something for it only while
    // it reads slower than it is sent to (a batch is at most half of maxBackpressureBytes, config/load.ts).
    this.#cutLog = new BoundedLog(log, options.logMaxRefusalsPerSec ?? 10)
    this.buffered = new BufferedBytes(
      options.maxBackpressureBytesTotal ?? 0,
      options.maxBackpressureBytes / 16,
    )
    const inputPerSec = options.maxInputBytesPerSec ?? 0
    // One message of the largest size fits at once, whatever the rate.
    this.#inputBudgets = new InputBudgets(inputPerSec, Math.max(inputPerSec, options.maxPayloadBytes))
    const pattern = `${options.path.replace(/\/+$/, '')}/*`
    // Websockets are upgrade.ts: uWS gives them handlers of their own; their requests come back to #route.
    app.ws(pattern, new Upgrades(this, this.#admission).behavior())
    app.any(
      pattern,
      // Every handler is guarded: a bug answers 500, never ends the process.
      guard(log, 'engine.io request', this.#onHttp, res => this.#failRequest(res)),
    )
  }

  get log(): Logger {
    return this.#log
  }

  /** After a handler threw: 500, unless the request was answered or aborted already. */
  #failRequest(res: HttpResponse): void {
    answerFailedRequest(this.#log, () => writeRefusal(res, INTERNAL_ERROR, this.#cors, ''))
  }

  get sessions(): ReadonlyMap<string, Session<T>> {
    return this.#sessions
  }

  get isClosed(): boolean {
    return this.#isClosed
  }

  get lingering(): number {
    return this.#lingering.size
  }

  get handshakesRateLimited(): number {
    return this.#admission.rateLimited
  }

  get handshakesFull(): number {
    return this.#admission.full
  }

  get handshakesLate(): number {
    return this.#admission.late
  }

  get inputLimited(): number {
    return this.#inputLimited
  }

  get bufferedBytes(): number {
    return this.buffered.total
  }

  get tooSlow(): { session: number; node: number } {
    return { session: this.#tooSlow, node: this.buffered.cut }
  }

  get replacedClosesDropped(): number {
    return this.#replacedClosesDropped
  }

  footprint(): Record<string, number> {
    return {
      sessions: this.#sessions.size,
      lingering: this.#lingering.size,
      inputBudgets: this.#inputBudgets.size,
      handshakeRateAddresses: this.#admission.rateAddresses,
    }
  }

  stopAccepting(): void {
    this.#isClosed = true
  }

  close(): void {
    this.stopAccepting()
    for (const session of [...this.#sessions.values()]) session.shutdown()
    for (const session of [...this.#lingering.values()]) session.polling?.stopLingering()
  }

  // Dispatch (docs/consumer-protocol.md §1), the same for plain requests and upgrades.

  #route(request: RequestInfo, isUpgrade: boolean): Route<T> {
    if (Buffer.byteLength(request.rawQuery) > this.options.maxQueryBytes)
      return refuse(ENGINE_ERRORS.BAD_REQUEST)
    if (!isUpgrade && request.method === 'options') return { kind: 'preflight' }
    const query = new URLSearchParams(request.rawQuery)
    // JSONP (`j`, v3 only, for browsers without CORS XHR) is not supported (docs/consumer-protocol.md §1).
    if (query.has('j')) return refuse(ENGINE_ERRORS.BAD_REQUEST)
    const transport = query.get('transport')
    if (transport !== 'polling' && transport !== 'websocket') return refuse(ENGINE_ERRORS.UNKNOWN_TRANSPORT)
    const revision = revisionOf(query.get('EIO'))
    const sid = query.get('sid')
    if (sid !== null) {
      // A close packet lingers for the next GET of its sid, even once a newer session opened under
      // that sid (the same consumer): the client it was for polls again at once, the newer one only
      // after its handshake's answer (docs/consumer-protocol.md §3).
      const lingering = this.#lingering.get(sid)
      const isLastPoll = !isUpgrade && request.method === 'get' && transport === 'polling'
      if (
        lingering !== undefined &&
        isLastPoll &&
        revision === lingering.protocol &&
        this.#admits(lingering, query)
      )
        return { kind: 'poll', session: lingering, query }
      const session = this.#sessions.get(sid)
      if (session === undefined) return refuse(ENGINE_ERRORS.UNKNOWN_SID)
      // A sid is not a credential: a request that fails the session's own check looks like an unknown sid.
      if (!this.#admits(session, query)) return refuse(ENGINE_ERRORS.UNKNOWN_SID)
      if (revision !== session.protocol) return refuse(ENGINE_ERRORS.BAD_REQUEST)
      if (isUpgrade) {
        if (transport !== 'websocket') return refuse(ENGINE_ERRORS.BAD_REQUEST)
        return session.polling === undefined || session.isUpgrading
          ? { kind: 'doomed', query }
          : { kind: 'probe', session, query }
      }
      if (transport !== session.transport) return refuse(ENGINE_ERRORS.BAD_REQUEST)
      if (request.method === 'get') return { kind: 'poll', session, query }
      if (request.method === 'post') return { kind: 'post', session, query }
      return { kind: 'bad-method' }
    }
    if (!isUpgrade && request.method !== 'get') return refuse(ENGINE_ERRORS.BAD_HANDSHAKE_METHOD)
    if ((transport === 'websocket') !== isUpgrade) return refuse(ENGINE_ERRORS.BAD_REQUEST)
    if (revision === undefined) return refuse(ENGINE_ERRORS.UNSUPPORTED_PROTOCOL_VERSION)
    if (this.#isClosed) return refuse(this.#admission.paced(ENGINE_ERRORS.SHUTTING_DOWN))
    if (!this.#cors.isAllowed(request.origin)) return refuse(ENGINE_ERRORS.FORBIDDEN)
    return { kind: 'handshake', revision, query }
  }

  /** Whose input budget a session draws on: the application's say, else its own id. */
  #inputKey(id: string, data: T): string {
    try {
      return this.#handlers.inputKey?.(data) ?? id
    } catch (err) {
      this.#log.error({ err, sid: id }, 'engine.io inputKey hook failed')
      return id
    }
  }

  #admits(session: EngineSession<T>, query: URLSearchParams): boolean {
    try {
      return this.#handlers.admits?.(session, query) ?? true
    } catch (err) {
      this.#log.error({ err, sid: session.id }, 'engine.io admits hook failed')
      return false
    }
  }

  readonly #onHttp = (res: HttpResponse, req: HttpRequest): void => {
    const request = readRequest(req)
    const route = this.#route(request, false)
    const cors = this.#cors
    switch (route.kind) {
      case 'preflight':
        return cors.writePreflight(res, request)
      case 'refuse':
        return writeRefusal(res, route.refusal, cors, request.origin, request.method === 'head')
      case 'bad-method':
        return writeEmpty(res, 500, cors, request.origin)
      case 'poll':
        return route.session.polling?.poll(res, request)
      case 'post':
        return route.session.polling?.post(res, request)
      case 'handshake':
        return this.#handshakePolling(res, req, request, route.revision, route.query)
      default:
        return writeRefusal(res, ENGINE_ERRORS.BAD_REQUEST, cors, request.origin) // probe/doomed need an upgrade
    }
  }

  #handshakePolling(
    res: HttpResponse,
    req: HttpRequest,
    request: RequestInfo,
    revision: Revision,
    query: URLSearchParams,
  ): void {
    const decision = this.#admission.authorize(res, req, query)
    if (!decision.ok) return writeRefusal(res, decision, this.#cors, request.origin)
    const { id, data } = decision
    const open = (): void => {
      const { options } = this
      const session = this.open(id, data, revision, owner => {
        return new PollingTransport(owner, {
          revision,
          isB64: asksB64(query),
          maxPayloadBytes: options.maxPayloadBytes,
          maxBackpressureBytes: options.maxBackpressureBytes,
          lingerMs: options.pingTimeoutMs, // a live client polls again at once; this is plenty
          cors: this.#cors,
          log: this.#log,
        })
      })
      const cookie =
        options.cookieName === null
          ? undefined
          : `${options.cookieName}=${encodeURIComponent(session.id)}; Path=/; HttpOnly; SameSite=Lax`
      // The open packet, and whatever open() sent, answer this very request.
      session.polling?.poll(res, request, cookie)
    }
    const gone = new Abandonment()
    const prepared = this.#admission.prepare(data, gone)
    if (prepared === undefined) return open()
    let isAborted = false
    res.onAborted(() => {
      isAborted = true
      gone.abort() // the client went away: prepare() may stop short
    })
    // Answered from a promise callback: guarded, so that a bug answers 500 instead of rejecting into the void.
    const answerInternal = (): void => {
      if (!isAborted) res.cork(() => writeRefusal(res, INTERNAL_ERROR, this.#cors, request.origin))
    }
    void prepared.then(
      guard(
        this.#log,
        'engine.io handshake',
        (outcome: Prepared) => {
          if (isAborted) return this.#admission.release(data, outcome) // the client went away meanwhile
          const refusal = this.#admission.unpreparedRefusal(outcome)
          if (refusal !== undefined) this.#admission.release(data, outcome)
          res.cork(() => (refusal ? writeRefusal(res, refusal, this.#cors, request.origin) : open()))
        },
        answerInternal,
      ),
    )
  }

  /**
   * A new session under `id`; a live one with that id is replaced. A polling client of the
   * id, replaced or closed, keeps its close packet for its next GET (see #route).
   */
  open(
    id: string,
    data: T,
    revision: Revision,
    createTransport: (owner: TransportOwner) => PollingTransport | WebSocketTransport,
  ): EngineSession<T> {
    const replaced = this.#sessions.get(id)
    const followsPolling = replaced?.polling !== undefined || this.#lingering.has(id)
    replaced?.replace()
    const input = this.#inputBudgets.take(this.#inputKey(id, data))
    const session = new EngineSession(this, id, revision, data, createTransport, input)
    if (followsPolling) session.followsPollingClient()
    this.#sessions.set(id, session)
    try {
      this.#handlers.open(session, replaced)
    } catch (err) {
      this.#log.error({ err, sid: id }, 'engine.io open handler failed')
      session.close('internal error')
    }
    return session
  }

  // UpgradeHost

  routeUpgrade(request: RequestInfo): UpgradeRoute<T> {
    const route = this.#route(request, true)
    const isUpgradeRoute =
      route.kind === 'refuse' ||
      route.kind === 'handshake' ||
      route.kind === 'probe' ||
      route.kind === 'doomed'
    return isUpgradeRoute ? route : refuse(ENGINE_ERRORS.BAD_REQUEST) // #route gives no other to an upgrade
  }

  // SessionHost

  message(session: EngineSession<T>, data: string | Buffer): void {
    try {
      this.#handlers.message(session, data)
    } catch (err) {
      this.#log.error({ err, sid: session.id }, 'engine.io message handler failed')
      session.close('internal error')
    }
  }

  ended(session: EngineSession<T>, reason: string, lingers: boolean, isReplaced: boolean): void {
    if (reason === TOO_MUCH_INPUT) this.#inputLimited++
    else if (reason === TOO_SLOW) this.#tooSlow++
    else if (reason === TOO_SLOW_FOR_NODE)
      this.#cutLog.warn(
        this.#log,
        { sid: session.id, bufferedBytes: this.buffered.total, cut: this.buffered.cut },
        'consumer closed as too slow: buffers towards all consumers past consumerMaxBackpressureBytesTotal',
      )
    this.#inputBudgets.release(this.#inputKey(session.id, session.data))
    if (this.#sessions.get(session.id) === session) this.#sessions.delete(session.id)
    if (lingers) {
      const previous = this.#lingering.get(session.id)
      this.#lingering.set(session.id, session)
      previous?.polling?.stopLingering()
    }
    if (isReplaced) return
    try {
      this.#handlers.close(session, reason)
    } catch (err) {
      this.#log.error({ err, sid: session.id }, 'engine.io close handler failed')
    }
  }

  droppedReplacedClose(): void {
    this.#replacedClosesDropped++
  }

  forgotten(session: EngineSession<T>): void {
    if (this.#lingering.get(session.id) === session) this.#lingering.delete(session.id)
  }
}
