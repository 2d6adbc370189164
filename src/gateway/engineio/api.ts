import type { EncodedMessage, Revision } from './packet.js'
import type { TransportName } from './transport.js'

/** The engine's slice of the config. Every bound has a unit in its name. */
export interface EngineOptions {
  /** Endpoint prefix; requests match by prefix, trailing slash added. @default '/websocket/' */
  readonly path: string
  /** v3: how often the client pings; v4: how often the server pings, in ms. @default 25000 */
  readonly pingIntervalMs: number
  /** v3: slack after pingInterval before a silent client is closed; v4: time a pong may take, in ms. @default 20000 */
  readonly pingTimeoutMs: number
  /** Time a probed websocket has to send the upgrade packet `5`, in ms. @default 10000 */
  readonly upgradeTimeoutMs: number
  /** Largest POST body or websocket message, in bytes; advertised as maxPayload. @default 1000000 */
  readonly maxPayloadBytes: number
  /** Longest query string, in bytes; a longer one is refused before anything else. @default 2048 */
  readonly maxQueryBytes: number
  /** Live sessions at most; further handshakes get 503. @default 100000 */
  readonly maxSessions: number
  /** Bytes queued towards one session (websocket send buffer, or polling queue) before it is closed. @default 1048576 */
  readonly maxBackpressureBytes: number
  /**
   * Bytes buffered towards all websockets together: past it, a websocket holding at least a
   * sixteenth of maxBackpressureBytes and the average of those holding some is closed as too
   * slow on its next send or drain (buffered-bytes.ts). 0: no bound. @default 0
   */
  readonly maxBackpressureBytesTotal?: number
  /** Lines a second at most of each kind of refusal or close logged at warn; the rest are counted. @default 10 */
  readonly logMaxRefusalsPerSec?: number
  /**
   * Bytes the sessions of one input key (EngineHandlers.inputKey, else the
   * sid) may send together (websocket messages, POST bodies, what a
   * websocket sent before its open packet) on average per second,
   * maxPayloadBytes at once; past it the session is closed, its input unread
   * ('too much input'). The budget outlives the sessions until it has filled
   * up again: a reconnect starts where the last session left it. 0: no
   * limit. @default 0
   */
  readonly maxInputBytesPerSec?: number
  /**
   * Bytes each packet the client sends counts against maxInputBytesPerSec beside its own:
   * one-byte pings, pongs or noops cost the node a frame and a dispatch each, as a short
   * request does (README, Limits and bad input). @default 0
   */
  readonly inputBytesPerPacket?: number
  /** Name of the cookie carrying the sid on the polling handshake; null sends none. @default 'snapper.ws' */
  readonly cookieName: string | null
  /** Origins allowed to open sessions; empty allows any. @default [] */
  readonly corsOrigins: readonly string[]
  /**
   * What a 503 refusal (full, shutting down) tells the client to wait, in ms:
   * a Retry-After header, and `retryAfterMs` in the polling body. @default none
   */
  readonly retryAfterMs?: number
  /**
   * Longest an accepted handshake waits for the prepare hook, in ms: past it
   * the handshake is refused with `refusal` (and retryAfterMs), a polling one
   * with that status and body, a websocket (upgraded already) closed with
   * 1013 "try again later"; the hook's signal is aborted and abandon()
   * follows once the hook settles. @default none: as long as the hook takes
   */
  readonly prepareTimeout?: {
    readonly ms: number
    readonly refusal: { readonly status: 503; readonly code: number; readonly message: string }
  }
  /** Offer permessage-deflate (uWS's shared compressor) and compress messages sent on websockets. @default false */
  readonly compression?: boolean
  /** New sessions one client address may open per second; further handshakes get 429. 0: no limit. @default 0 */
  readonly maxHandshakesPerAddressPerSec: number
  /** Leading bits of an IPv6 client address that rate counts it by (src/client-address.ts). @default 64 */
  readonly perAddressIpv6PrefixBits: number
  /** Proxies (addresses or CIDR ranges) whose X-Forwarded-For / X-Real-IP names the client. @default [] */
  readonly trustedProxies: readonly string[]
}

/** What the authorisation hook sees of a handshake request. */
export interface Handshake {
  /** The decoded query, like URLSearchParams (`+` is a space). */
  readonly query: URLSearchParams
  /** Every request header, lower-case names (cookie, origin, user-agent...). */
  readonly headers: Readonly<Record<string, string>>
  /** The client's address: the TCP peer's, or what a trusted proxy says it is. */
  readonly remoteAddress: string
}

export type Authorization<T> =
  | { readonly ok: true; readonly id: string; readonly data: T }
  /** A 503 or 429 gets the engine's retryAfterMs (Retry-After, and `retryAfterMs` in a polling body). */
  | {
      readonly ok: false
      readonly status: 400 | 403 | 429 | 503
      readonly code: number
      readonly message: string
    }

/**
 * The broker's side of the engine. Handlers run inside uWS callbacks and must
 * not throw; a throw (or a rejected prepare) is logged as a bug and closes
 * the session ('internal error'), or refuses the handshake with a 500.
 *
 *   handshake ─▶ authorize (synchronous) ─▶ websocket upgraded at once
 *                     │ accepted
 *                     ▼
 *               prepare (may wait) ─▶ open: the open packet, then open()
 *                     │ client gone / engine closed meanwhile / past prepareTimeout
 *                     ▼
 *                  abandon (once prepare settled)
 */
export interface EngineHandlers<T> {
  /**
   * Decides a handshake from the request alone, at once: a websocket is then
   * upgraded inside uWS's upgrade handler (uWS 20.30 may drop a socket
   * upgraded later). The id becomes the sid; an id already live replaces that
   * session.
   */
  authorize(handshake: Handshake): Authorization<T>
  /**
   * Optional. What must be done before an accepted session opens (the broker
   * takes the consumer over): the open packet waits until this settles, a
   * polling handshake is answered then. A rejection with TryAgainLater
   * refuses the handshake as past prepareTimeout (its 503, retryAfterMs; a
   * websocket closed 1013); any other rejection is a bug: the handshake
   * gets a 500, or the websocket closes with 1011. `abandoned` is aborted
   * when the client goes away meanwhile (the polling request aborted, the
   * websocket closed) or at the engine's prepareTimeout, so that the hook
   * can stop short: abandon() follows once it settles. @default open at once
   */
  prepare?(data: T, abandoned: Abandoned): Promise<void>
  /**
   * Optional. An accepted authorization that will never become a session: the
   * client went away while prepare() was pending, prepare() failed or took
   * past prepareTimeout, or the engine closed meanwhile. Release what authorize() and prepare() took;
   * open() and close() are not called for it.
   */
  abandon?(data: T): void
  /**
   * A session opened. `replaced` is the live session with the same id that this
   * one replaces: the engine has already closed it, without calling close() for it.
   * Sends from here go out right after the open packet.
   */
  open(session: Session<T>, replaced: Session<T> | undefined): void
  /**
   * Whether a later request of a session (poll, post, upgrade probe) may use
   * it: sids can be guessed, so the application can ask for the same
   * credentials as the handshake. False answers 400 "Session ID unknown".
   * @default every request is admitted
   */
  admits?(session: Session<T>, query: URLSearchParams): boolean
  /**
   * Optional. The sessions whose input counts against one maxInputBytesPerSec
   * budget (the consumer gateway: one per user); a budget outlives its
   * sessions until it has filled up again, so reconnecting gives none back.
   * @default the session id
   */
  inputKey?(data: T): string
  /** One message packet from the client: text, or binary data in its own Buffer. */
  message(session: Session<T>, data: string | Buffer): void
  /** Exactly once per opened session, except sessions that were replaced. */
  close(session: Session<T>, reason: string): void
}

/**
 * One Engine.IO session. Sends on a closed session are ignored, and messages
 * keep their order across the polling → websocket upgrade.
 */
export interface Session<T> {
  readonly id: string
  readonly protocol: Revision
  /** The transport in use now: 'polling' until an upgrade completes. */
  readonly transport: TransportName
  readonly data: T
  readonly isOpen: boolean
  /** Sends one message packet (`'4' + text`). */
  send(text: string): void
  /** Sends a message encoded once for many sessions (see `encodeMessage`). */
  sendEncoded(message: EncodedMessage): void
  /** Sends one binary message (base64 for clients that asked for `b64`, and always on v4 polling). */
  sendBinary(data: Buffer): void
  /**
   * Closes from the server: queued packets go out first, then a close packet
   * (polling; kept for the next GET if none is pending) or a close frame
   * without a code (websocket). @default reason 'forced close'
   */
  close(reason?: string): void
}

export interface Engine<T> {
  /** Live sessions by id. */
  readonly sessions: ReadonlyMap<string, Session<T>>
  /** Closed polling sessions still holding their close packet for one last GET. */
  readonly lingering: number
  /** Handshakes refused since start because their address was over maxHandshakesPerAddressPerSec. */
  readonly handshakesRateLimited: number
  /** Handshakes refused with 503 since start because the node held maxSessions sessions. */
  readonly handshakesFull: number
  /** Handshakes refused since start because their prepare() took longer than prepareTimeout.ms. */
  readonly handshakesLate: number
  /** Sessions closed since start for sending more than maxInputBytesPerSec. */
  readonly inputLimited: number
  /** Bytes uWS buffers towards all websockets now (bounded by maxBackpressureBytesTotal). */
  readonly bufferedBytes: number
  /**
   * Sessions closed since start as too slow: past maxBackpressureBytes on their own (`session`),
   * or cut while the websockets' buffered total was past maxBackpressureBytesTotal (`node`).
   */
  readonly tooSlow: { readonly session: number; readonly node: number }
  /** What the engine holds per session, per input key and per address, by structure (a leak check's reading). */
  footprint(): Record<string, number>
  /**
   * POSTs carrying a close packet dropped since start (400, as an unknown sid) as a replaced
   * polling client's: each marks a takeover that raced that client (docs/consumer-protocol.md §3).
   */
  readonly replacedClosesDropped: number
  /**
   * Refuses new handshakes with 503 (a drain begins: a client reaching this process over a
   * connection kept open, past the closed listener, must not open a session here); live sessions go on.
   */
  stopAccepting(): void
  /** Closes every session (reason 'server shutdown') and refuses new handshakes with 503. */
  close(): void
}

/**
 * What a prepare hook rejects with when the session cannot be served now
 * (what it needs is unavailable), not because of a bug: the handshake is
 * refused with `refusal` and retryAfterMs, a websocket closed with 1013.
 */
export class TryAgainLater extends Error {
  readonly refusal: { readonly status: 503; readonly code: number; readonly message: string }

  constructor(refusal: TryAgainLater['refusal'], reason: string) {
    super(reason)
    this.name = 'TryAgainLater'
    this.refusal = refusal
  }
}

/**
 * Whether a handshake was abandoned while its prepare hook ran (its client
 * went away, the engine closed, prepareTimeout passed): a flag the hook reads
 * to stop short. Not an AbortSignal: one is made per handshake, and making
 * an AbortSignal cost a connect storm microseconds each (docs/performance.md,
 * section 1); nothing listens for the abort, the hook looks when it must.
 */
export interface Abandoned {
  readonly aborted: boolean
}

/** The engine's side of an Abandoned: set once, never cleared. */
export class Abandonment implements Abandoned {
  aborted = false

  abort(): void {
    this.aborted = true
  }
}
