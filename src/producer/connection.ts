/**
 * One producer connection: the auth handshake, then frames read, served
 * and answered in order (docs/producer-protocol.md §4, §5, §8), until a graceful end.
 *
 *   socket ─▶ RespDecoder ─▶ pump ─▶ parseMessage ─▶ InFlight: method starts ─▶ reply line
 *                              ▲                                                 │ in order
 *   resume ◀─ pending < max ───┘                      socket.write ◀─ per tick ◀──┘
 *            && their frames' bytes < max
 *            && no write backpressure && no subscribe/unsubscribe waiting or running
 *            && the broker's publish backlog is not full
 *            && the node's producers' frames in flight are below their bound, or our producer's below its share (shares.ts)
 *
 * This file reads and owns the socket; in-flight.ts runs the work and keeps
 * the replies in order. The connection's life (authenticating → open → … →
 * ended) is the table in connection-state.ts: #on(event) moves along it,
 * #exit and #enter do what leaving and entering a state does, and each timer
 * belongs to one state. Refused input (auth failed, framing broken) is never
 * read again: the data listener is removed, so nothing the client sends
 * after it is served, in any state.
 */
import type { Socket } from 'node:net'
import type { Tokens } from '../auth/token.js'
import { guard } from '../guard.js'
import { truncate, type Logger } from '../log.js'
import {
  nextState,
  READS_SOCKET,
  SERVES_FRAMES,
  type ConnectionEvent,
  type ConnectionState,
} from './connection-state.js'
import type { ProducerCounters } from './counters.js'
import { InFlight } from './in-flight.js'
import { parseMessage, type RpcId, type RpcMessage } from '../jsonrpc.js'
import type { BoundedLog } from '../bounded-log.js'
import type { Method } from './methods.js'
import { isFramingError, RespDecoder, type FramingError } from './resp.js'
import type { ProducerShares, Share } from './shares.js'

export interface ConnectionOptions {
  /** Largest RESP payload, in bytes. */
  readonly maxFrameBytes: number
  /** Largest first payload (the auth request), in bytes: a stranger's frame is never buffered past it. */
  readonly maxAuthFrameBytes: number
  /** Requests and publishes in flight before this connection stops reading. */
  readonly producerMaxPending: number
  /** Payload bytes of the frames in flight before this connection stops reading. */
  readonly producerMaxPendingBytes: number
  /** Time to authenticate, in ms; never applies once authenticated. */
  readonly producerAuthTimeoutMs: number
  /** The whole graceful shutdown's budget, in ms: a drain waits up to half of it for a pause in the traffic. */
  readonly drainTimeoutMs: number
}

export interface ConnectionDeps {
  readonly options: ConnectionOptions
  /** Publishes not stored yet, for all connections: while it is full, nothing is read. */
  readonly backlog: { readonly isFull: boolean }
  /** All producer connections' frames in flight: past its bound, one holding more than its share waits its turn. */
  readonly shares: ProducerShares
  readonly tokens: Tokens
  readonly methods: ReadonlyMap<string, Method>
  readonly counters: ProducerCounters
  readonly logger: Logger
  /** Where refusals a stranger can cause are logged, at a bounded rate. */
  readonly refusals: BoundedLog
  /** Called once when the connection leaves `authenticating` (authenticated, refused or closed). */
  readonly onAuthenticationEnd: () => void
}

/** After our FIN, how long the client has to close its side before the socket is destroyed, in ms. */
const END_GRACE_MS = 5000
/**
 * A graceful close sends its FIN after the client has been silent this long
 * (or after half the drain budget), in ms: long enough that a client stalled
 * by a busy machine is not mistaken for one between bursts.
 */
const DRAIN_QUIET_MS = 200

export class ProducerConnection {
  readonly #socket: Socket
  readonly #deps: ConnectionDeps
  readonly #log: Logger
  readonly #decoder: RespDecoder
  readonly #closed: Promise<void>
  #state: ConnectionState = 'authenticating'
  /** authenticating: the client's time to authenticate. */
  #authTimer: NodeJS.Timeout | undefined
  /** awaiting-pause: looks for a pause in the client's traffic every DRAIN_QUIET_MS. */
  #quietTimer: NodeJS.Timeout | undefined
  /** awaiting-pause: how long the drain waits for that pause at most. */
  #drainWaitTimer: NodeJS.Timeout | undefined
  /** closing: how long the client has to close its side. */
  #graceTimer: NodeJS.Timeout | undefined
  #lastDataAt = 0
  readonly #work: InFlight
  readonly #share: Share
  /** Reading is paused by flow control (backpressure, too much in flight, served alone). */
  #isPaused = false
  /** Set while #pump runs, so that answers given inside it do not start a nested pump. */
  #isPumping = false

  constructor(socket: Socket, deps: ConnectionDeps) {
    this.#socket = socket
    this.#deps = deps
    this.#log = deps.logger.child({ remote: `${socket.remoteAddress}:${socket.remotePort}` })
    this.#decoder = new RespDecoder(deps.options.maxAuthFrameBytes)
    this.#closed = new Promise(resolve => socket.once('close', () => resolve()))
    this.#share = deps.shares.open(this.#guard('producer turn', () => this.#pump()))
    this.#work = new InFlight({
      methods: deps.methods,
      counters: deps.counters,
      log: this.#log,
      send: text => this.#send(text),
      onProgress: () => this.#pump(),
      share: this.#share,
    })

    socket.setNoDelay(true) // replies are already coalesced per tick
    socket.setKeepAlive(true) // finds dead peers; a live idle producer is never closed
    this.#onData = this.#guard('producer data', this.#serveData)
    socket.on('data', this.#onData)
    socket.on('end', this.#guard('producer end', this.#onEnd))
    socket.on('drain', this.#guard('producer drain', this.#onDrain))
    socket.on('error', this.#onError)
    socket.once('close', this.#guard('producer close', this.#onClose))
    this.#authTimer = setTimeout(
      this.#guard('producer auth timeout', this.#onAuthTimeout),
      deps.options.producerAuthTimeoutMs,
    )
  }

  /** Resolves when the socket is closed. */
  get closed(): Promise<void> {
    return this.#closed
  }

  /** The publish backlog has room again: read on, unless something else holds this connection back. */
  resume(): void {
    this.#pump()
  }

  /** Requests and publishes in flight on this connection. */
  get pending(): number {
    return this.#work.pending
  }

  /** Bytes held for this connection: unread input, queued replies, the socket's write buffer. */
  get bufferedBytes(): number {
    return this.#decoder.bufferedBytes + this.#work.readyLength + this.#socket.writableLength
  }

  /**
   * Graceful end (listener close): serve and answer every frame received,
   * then FIN. Our FIN races with the client's writes: snapper-producer keeps
   * writing until it has processed the FIN, and what it writes in between is
   * lost on its side. So the FIN waits for a pause in the client's traffic
   * (at most half of drainTimeoutMs), serving meanwhile as usual; what still
   * arrives after the FIN is handled by `closing`. Resolves on close.
   */
  drain(): Promise<void> {
    if (this.#state === 'authenticating') {
      // Not a 401: the client would give up for good; with id null it ignores this and reconnects.
      this.#refuseInput()
      this.#work.answerError(null, 'SHUTTING_DOWN')
      this.#on('inputRefused')
    } else this.#on('drainRequested')
    return this.#closed
  }

  /** Moves along the transition table; an event it does not list for this state changes nothing. */
  #on(event: ConnectionEvent): void {
    const from = this.#state
    const to = nextState(from, event)
    if (to === undefined) return
    this.#state = to
    this.#exit(from)
    this.#enter(to)
  }

  /** Each timer belongs to one state and ends with it. */
  #exit(state: ConnectionState): void {
    switch (state) {
      case 'authenticating':
        clearTimeout(this.#authTimer)
        return this.#deps.onAuthenticationEnd()
      case 'awaiting-pause':
        clearInterval(this.#quietTimer)
        return clearTimeout(this.#drainWaitTimer)
      case 'closing':
        return clearTimeout(this.#graceTimer)
    }
  }

  #enter(state: ConnectionState): void {
    switch (state) {
      case 'open':
        return this.#decoder.setMaxFrameBytes(this.#deps.options.maxFrameBytes)
      case 'awaiting-pause':
        this.#quietTimer = setInterval(this.#guard('producer quiet check', this.#checkQuiet), DRAIN_QUIET_MS)
        this.#drainWaitTimer = setTimeout(
          this.#guard('producer drain wait', () => this.#on('drainWaitOver')),
          this.#deps.options.drainTimeoutMs / 2,
        )
        return this.#checkQuiet()
      case 'draining':
      case 'answering':
        this.#socket.pause() // nothing more is read; what was received is still served
        return this.#pump()
      case 'closing':
        this.#work.flush() // the last replies
        this.#socket.end()
        // Keep reading: late publishes are stored, and closing with unread bytes would send RST,
        // which can destroy our last replies in flight.
        this.#socket.resume()
        this.#graceTimer = setTimeout(() => this.#socket.destroy(), END_GRACE_MS).unref()
        return
      case 'ended':
        return this.#forget()
    }
  }

  #checkQuiet = (): void => {
    if (Date.now() - this.#lastDataAt >= DRAIN_QUIET_MS) this.#on('clientPaused')
  }

  /**
   * Wraps a callback of the event loop (socket listener, timer): a throw, a
   * bug, is logged and closes this connection only (#failInternal).
   */
  #guard<A extends unknown[]>(site: string, fn: (...args: A) => void): (...args: A) => void {
    return guard(this.#log, site, fn, this.#failInternal)
  }

  /** After a bug: an internal error (id null) and a graceful close; if even that throws, the socket is destroyed. */
  #failInternal = (): void => {
    try {
      this.#refuseInput()
      this.#work.answerError(null, 'INTERNAL')
      this.#on('inputRefused')
    } catch (err) {
      this.#socket.destroy()
      throw err // logged by guard() as a failed recovery
    }
  }

  /** The guarded data listener, kept to be removed when input is refused. */
  readonly #onData: (chunk: Buffer) => void

  #serveData = (chunk: Buffer): void => {
    this.#lastDataAt = Date.now()
    if (this.#state === 'closing') return this.#serveLate(chunk)
    if (!SERVES_FRAMES.has(this.#state)) return // answering or ended: nothing more is served
    this.#decoder.push(chunk)
    this.#pump()
  }

  /** After our FIN: store the publish notifications the client sent before it saw it. */
  #serveLate(chunk: Buffer): void {
    this.#decoder.push(chunk)
    for (let frame = this.#decoder.next(); frame !== undefined; frame = this.#decoder.next()) {
      if (isFramingError(frame)) return this.#refuseInput()
      this.#deps.counters.frames++
      this.#work.serveLate(parseMessage(frame), frame.length)
    }
  }

  /** Client FIN: what it sent is still served and answered (the server is allowHalfOpen). */
  #onEnd = (): void => {
    this.#on('clientEnded')
  }

  #onDrain = (): void => {
    this.#pump()
  }

  #onError = (err: Error): void => {
    // Resets and broken pipes are the peer's business; 'close' follows and cleans up.
    this.#log.debug({ err: err.message }, 'producer socket error')
  }

  #onClose = (): void => {
    this.#on('socketClosed')
  }

  /** Entering `ended`: work in flight still finishes in Redis; its answers have nowhere to go. */
  #forget(): void {
    this.#setPaused(false)
    this.#share.close()
    this.#decoder.discard()
    this.#work.close()
  }

  #onAuthTimeout = (): void => {
    this.#refuse(null, 'Error: Authentication timeout')
  }

  /** Serves decoded frames while allowed, sets the socket's reading to match, and moves on once all is answered. */
  #pump(): void {
    if (this.#isPumping || (!SERVES_FRAMES.has(this.#state) && this.#state !== 'answering')) return
    this.#isPumping = true
    this.#work.startHeld()
    while (SERVES_FRAMES.has(this.#state) && this.#canTakeMore()) {
      const frame = this.#decoder.next()
      if (frame === undefined) {
        this.#on('inputExhausted') // draining only: in the other states more input may come
        break
      }
      if (isFramingError(frame)) this.#failFraming(frame)
      else this.#serve(frame)
    }
    this.#isPumping = false
    this.#setPaused(SERVES_FRAMES.has(this.#state) && !this.#canTakeMore())
    if (this.#state === 'answering' && this.pending === 0) this.#on('allAnswered')
  }

  #canTakeMore(): boolean {
    return (
      !this.#deps.backlog.isFull &&
      !this.#socket.writableNeedDrain &&
      !this.#work.isAlone &&
      this.pending < this.#deps.options.producerMaxPending &&
      this.#share.bytes < this.#deps.options.producerMaxPendingBytes &&
      this.#share.mayRead // last: only a connection nothing else holds back joins the queue for its turn
    )
  }

  #serve(payload: Buffer): void {
    this.#deps.counters.frames++
    const message = parseMessage(payload)
    if (this.#state === 'authenticating') this.#authenticate(message)
    else this.#work.serve(message, payload.length)
  }

  #authenticate(message: RpcMessage): void {
    if (message.kind !== 'request' || message.method !== 'auth')
      return this.#refuse(message.kind === 'notification' ? null : message.id, 'Error: Auth request expected')
    const token = Array.isArray(message.params) ? (message.params as unknown[])[0] : undefined
    const verified = this.#deps.tokens.verifyProducer(token)
    if (!verified.ok) return this.#refuse(message.id, verified.reason)
    this.#on('authenticated')
    const { id } = verified.claims
    if (typeof id === 'string') this.#share.identify(id) // its connections share one share (shares.ts)
    this.#log.info(
      { producerId: typeof id === 'string' ? truncate(id, 64) : undefined },
      'producer authenticated',
    )
    this.#work.answerResult(message.id, 'OK')
  }

  /**
   * 401 then FIN; frames sent behind the failed auth are dropped, as the
   * original did. With the auth request's id, snapper-producer gives up for
   * good (a bad secret will not heal); with id null (timeout, no auth request)
   * it ignores the reply and reconnects.
   */
  #refuse(id: RpcId | null, reason: string): void {
    this.#deps.refusals.info(this.#log, { reason }, 'producer refused')
    this.#refuseInput()
    this.#work.answerError(id, 'UNAUTHORIZED', reason)
    this.#on('inputRefused')
  }

  /** The stream cannot be resynchronised: answer it after what came before, then close. */
  #failFraming(error: FramingError): void {
    this.#deps.refusals.info(this.#log, { code: error.code, detail: error.detail }, 'producer framing error')
    this.#refuseInput()
    this.#work.answerError(null, error.code)
    this.#on('inputRefused')
  }

  /** Drops what is buffered and stops listening: nothing this client sends from now on is read. */
  #refuseInput(): void {
    this.#decoder.discard()
    this.#socket.off('data', this.#onData)
  }

  /** One write for every reply that left the line in a tick. */
  #send(text: string): void {
    if (!this.#socket.writable) return // ended, or our FIN is sent
    this.#socket.write(text) // false: writableNeedDrain holds reading until 'drain'
    this.#pump()
  }

  #setPaused(isPaused: boolean): void {
    if (isPaused === this.#isPaused) return
    this.#isPaused = isPaused
    const counters = this.#deps.counters
    if (isPaused) {
      counters.paused++
      counters.pauses++
      this.#socket.pause()
    } else {
      counters.paused--
      if (READS_SOCKET.has(this.#state)) this.#socket.resume()
    }
  }
}
