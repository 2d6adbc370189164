import type {
  HttpRequest,
  HttpResponse,
  WebSocket,
  WebSocketBehavior,
  us_socket_context_t,
} from 'uWebSockets.js'
import { guard } from '../../guard.js'
import type { Logger } from '../../log.js'
import { type Admission, INTERNAL_ERROR, type Preparation, type Prepared } from './admission.js'
import type { BufferedBytes } from './buffered-bytes.js'
import { Abandonment, type EngineOptions } from './api.js'
import {
  answerFailedRequest,
  asksB64,
  type Refusal,
  type RequestInfo,
  readRequest,
  refuseUpgrade,
} from './http.js'
import type { Revision } from './packet.js'
import type { EngineSession } from './session.js'
import type { TransportOwner } from './transport.js'
import { loadUws } from './uws.js'
import { WebSocketTransport, type WebSocketSettings } from './websocket.js'

/** Where the engine's dispatch (docs/consumer-protocol.md §1) sends an upgrade request. */
export type UpgradeRoute<T> =
  | { readonly kind: 'refuse'; readonly refusal: Refusal }
  | { readonly kind: 'doomed'; readonly query: URLSearchParams }
  | { readonly kind: 'handshake'; readonly revision: Revision; readonly query: URLSearchParams }
  | { readonly kind: 'probe'; readonly session: EngineSession<T>; readonly query: URLSearchParams }

/** What the websocket side needs of the engine (server.ts): its settings, its dispatch, its session table. */
export interface UpgradeHost<T> {
  readonly options: EngineOptions
  readonly log: Logger
  /** What uWS buffers towards all the engine's websockets. */
  readonly buffered: BufferedBytes
  /** The dispatch of an upgrade request, the same checks as for a plain one. */
  routeUpgrade(request: RequestInfo): UpgradeRoute<T>
  /** A new session under `id`, as for a polling handshake. */
  open(
    id: string,
    data: T,
    revision: Revision,
    createTransport: (owner: TransportOwner) => WebSocketTransport,
  ): EngineSession<T>
}

/** What an accepted upgrade becomes once its socket opens. */
type Ticket<T> =
  | {
      readonly kind: 'handshake'
      readonly revision: Revision
      readonly id: string
      readonly data: T
      readonly prepared: Preparation
      /** Aborted when the socket closes: its prepare() may stop short. */
      readonly gone: Abandonment
    }
  | { readonly kind: 'probe'; readonly session: EngineSession<T> }
  /** An upgrade of a session already upgraded or upgrading: accepted and closed at once (docs/consumer-protocol.md §7). */
  | { readonly kind: 'doomed' }
  /** A handshake whose prepare() has settled: nothing to abort on close any more. */
  | { readonly kind: 'prepared' }

/**
 * What a handshake's socket keeps once its prepare() settled, for its whole life: the
 * same object for all, not the handshake's ticket, promise and abandonment (each idle
 * session held them, docs/performance.md section 1).
 */
const PREPARED: Ticket<never> = Object.freeze({ kind: 'prepared' })

/** The uWS user data of every socket, set in the upgrade handler; a handshake's ticket becomes PREPARED. */
interface SocketData<T> {
  readonly transport: WebSocketTransport
  ticket: Ticket<T>
}

/** What an upgrade needs from its request, copied before the callback returns. */
interface UpgradeHeaders {
  readonly key: string
  readonly protocol: string
  readonly extensions: string
  readonly context: us_socket_context_t
}

/** A socket whose handler threw: closed with 1011 (internal error), as the one socket concerned. */
const closeWithError = (ws: WebSocket<unknown>): void => ws.end(1011, 'internal error')

/**
 * The websocket side of the engine: uWS's upgrade, open, message and close
 * handlers. uWS splits an upgrade in two callbacks, the decision in `upgrade`
 * (synchronous, while the request lives) and the socket in `open`, joined by
 * the ticket in the socket's user data; that hand-over is this file's whole
 * job, kept apart from server.ts, which dispatches and keeps the sessions.
 */
export class Upgrades<T> {
  readonly #host: UpgradeHost<T>
  readonly #admission: Admission<T>
  readonly #log: Logger
  /**
   * What a websocket transport is told, by revision (v4, v3) and b64: four objects shared
   * by the sockets, not one each (an idle session held its own, docs/performance.md section 1).
   */
  readonly #settings: readonly (readonly WebSocketSettings[])[]

  constructor(host: UpgradeHost<T>, admission: Admission<T>) {
    this.#host = host
    this.#admission = admission
    this.#log = host.log
    const { options, buffered } = host
    const settings = (revision: Revision, isB64: boolean): WebSocketSettings =>
      Object.freeze({
        revision,
        isB64,
        maxPayloadBytes: options.maxPayloadBytes,
        compresses: options.compression ?? false,
        buffered,
      })
    this.#settings = [
      [settings(4, false), settings(4, true)],
      [settings(3, false), settings(3, true)],
    ]
  }

  /** The options and handlers of `app.ws`. */
  behavior(): WebSocketBehavior<SocketData<T>> {
    const { options } = this.#host
    const log = this.#log
    return {
      // Past our own bound, so that we read an oversized message and close with 1009 like
      // engine.io; uWS cuts the connection without reading anything larger than this.
      maxPayloadLength: 2 * options.maxPayloadBytes,
      maxBackpressure: options.maxBackpressureBytes,
      closeOnBackpressureLimit: 1, // typed as a number in this fork; any truthy value turns it on
      idleTimeout: 0, // the Engine.IO heartbeat is the liveness check
      sendPingsAutomatically: false,
      compression: options.compression ? loadUws().SHARED_COMPRESSOR : loadUws().DISABLED,
      // Every handler is guarded: a bug answers 500 or closes that one socket (1011), never the process.
      upgrade: guard(log, 'engine.io upgrade', this.#onUpgrade, res =>
        answerFailedRequest(log, () => refuseUpgrade(res, INTERNAL_ERROR)),
      ),
      open: guard(log, 'engine.io open', this.#onOpen, closeWithError),
      message: guard(
        log,
        'engine.io message',
        (ws: WebSocket<SocketData<T>>, data: ArrayBuffer, isBinary: boolean) =>
          ws.getUserData().transport.received(data, isBinary),
        closeWithError,
      ),
      drain: guard(log, 'engine.io drain', (ws: WebSocket<SocketData<T>>) =>
        ws.getUserData().transport.drained(),
      ),
      close: guard(log, 'engine.io close', (ws: WebSocket<SocketData<T>>) => {
        const { transport, ticket } = ws.getUserData()
        transport.closed()
        if (ticket.kind === 'handshake') ticket.gone.abort() // prepared by now, or abandoned soon
      }),
    }
  }

  readonly #onUpgrade = (res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void => {
    const request = readRequest(req)
    const route = this.#host.routeUpgrade(request)
    const headers: UpgradeHeaders = {
      key: req.getHeader('sec-websocket-key'),
      protocol: req.getHeader('sec-websocket-protocol'),
      extensions: req.getHeader('sec-websocket-extensions'),
      context,
    }
    switch (route.kind) {
      case 'handshake': {
        // Decided and upgraded here and now; what the session waits for (prepare) delays its open packet only.
        const decision = this.#admission.authorize(res, req, route.query)
        if (!decision.ok) return refuseUpgrade(res, decision)
        const { id, data } = decision
        const gone = new Abandonment()
        return this.#upgrade(res, headers, route.query, route.revision, {
          kind: 'handshake',
          revision: route.revision,
          id,
          data,
          prepared: this.#admission.prepare(data, gone),
          gone,
        })
      }
      case 'probe':
        return this.#upgrade(res, headers, route.query, route.session.protocol, {
          kind: 'probe',
          session: route.session,
        })
      case 'doomed':
        return this.#upgrade(res, headers, route.query, 4, { kind: 'doomed' }) // sends nothing: any revision
      case 'refuse':
        return refuseUpgrade(res, route.refusal)
    }
  }

  /** Completes an upgrade; uWS runs `open` (below) before this returns. */
  #upgrade(
    res: HttpResponse,
    headers: UpgradeHeaders,
    query: URLSearchParams,
    revision: Revision,
    ticket: Ticket<T>,
  ): void {
    const transport = new WebSocketTransport(this.#settings[revision === 3 ? 1 : 0]![asksB64(query) ? 1 : 0]!)
    res.upgrade<SocketData<T>>(
      { transport, ticket },
      headers.key,
      headers.protocol,
      headers.extensions,
      headers.context,
    )
  }

  readonly #onOpen = (ws: WebSocket<SocketData<T>>): void => {
    const socketData = ws.getUserData()
    const { transport, ticket } = socketData
    transport.opened(ws)
    if (ticket.kind === 'probe') {
      if (!ticket.session.probe(transport)) transport.end()
    } else if (ticket.kind === 'handshake') {
      const { id, data, revision, prepared } = ticket
      const open = (): void => {
        this.#host.open(id, data, revision, owner => transport.bind(owner))
        transport.deliverEarly()
      }
      if (prepared === undefined) {
        socketData.ticket = PREPARED
        return open()
      }
      void prepared.then(
        guard(
          this.#log,
          'engine.io open',
          (outcome: Prepared) => {
            socketData.ticket = PREPARED // a plain write: the socket may be closed by now
            if (!transport.isOpen) return this.#admission.release(data, outcome) // the client went away meanwhile
            const refusal = this.#admission.unpreparedRefusal(outcome)
            // The open packet and what open() sends go out in one write.
            if (refusal === undefined) return transport.cork(open)
            this.#admission.release(data, outcome)
            if (outcome === 'failed') transport.fail()
            // Past prepareTimeout, or refused by the hook: 1013, for the clients that read it; each client
            // reconnects on any close.
            else if (outcome !== 'ready') transport.tryAgainLater()
            else transport.end() // shutting down: a plain close, the client comes back elsewhere
          },
          () => transport.fail(),
        ),
      )
    } else transport.end()
  }
}
