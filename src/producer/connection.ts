/**
 * One producer connection: auth handshake, then frames served in arrival
 * order with replies in request order (spec/producer-wire.md §4, §5).
 *
 *   socket ─▶ RespDecoder ─▶ pump ─▶ parseMessage ─▶ method (starts now) ─▶ Reply slot
 *                              ▲                                              │ in order
 *   resume ◀─ pending < max ───┘                   socket.write ◀─ per tick ◀─┘
 *            && !writeBlocked && no subscribe/unsubscribe waiting or running
 *
 * Work is started as soon as a frame is read, without waiting for earlier
 * frames to finish (publish issues its Redis commands synchronously, so the
 * order is kept in Redis); replies wait in a FIFO of slots until every
 * earlier one is done, and go out as one write per tick. `subscribe` and
 * `unsubscribe` are the exception (SERVED_ALONE): each one waits until every
 * earlier frame's work is done, and no later frame starts until its own is,
 * so a publish right after a subscribe reaches the consumer and one right
 * after an unsubscribe does not.
 *
 *   auth ──OK──▶ open ──close()/client FIN/framing error──▶ draining ──all answered, FIN──▶ closing ──▶ ended
 *     ├──refused/timeout: 401 (frames behind it dropped)──────▶ draining
 *     └──client FIN: draining, but frames still face auth (#isAuthenticated)
 *
 * closing: our FIN is sent, but what the client wrote before it saw the FIN
 * still arrives. Its `publish` notifications (what `sendMessage` sends) are
 * stored, so a graceful close loses none; a request can no longer be
 * answered, so it is not served (the client's retry is then the only copy).
 */
import type { Socket } from 'node:net'
import type { Tokens } from '../auth/token.js'
import type { ErrorCode } from '../errors.js'
import { truncate, type Logger } from '../log.js'
import {
  encodeError,
  encodeSuccess,
  errorCodeOf,
  parseMessage,
  rpcError,
  toRpcError,
  type RpcId,
} from './jsonrpc.js'
import { SERVED_ALONE, type Method } from './methods.js'
import { encodeBulk, isFramingError, RespDecoder, type FramingError } from './resp.js'

export interface ConnectionOptions {
  /** Largest RESP payload, in bytes. */
  readonly maxFrameBytes: number
  /** Requests and publishes in flight before this connection stops reading. */
  readonly producerMaxPending: number
  /** Time to authenticate, in ms; never applies once authenticated. */
  readonly producerAuthTimeoutMs: number
  /** The whole graceful shutdown's budget, in ms: a drain waits up to half of it for a pause in the traffic. */
  readonly drainTimeoutMs: number
}

/** Counters shared by every connection of a listener; read by the metrics module. */
export interface ProducerCounters {
  /** Frames decoded. */
  frames: number
  /** Notifications ignored: unknown method, `publish` without params, a late `auth`. */
  ignored: number
  /** Requests and notifications in flight (answers not yet written, publishes not yet stored). */
  pending: number
  /** Connections not reading now: write backpressure, too much in flight, or a subscribe/unsubscribe served alone. */
  paused: number
  /** Times a connection stopped reading (same reasons). */
  pauses: number
  /** Errors answered or logged, by code. */
  readonly errors: Partial<Record<ErrorCode, number>>
}

export interface ConnectionDeps {
  readonly options: ConnectionOptions
  readonly tokens: Tokens
  readonly methods: ReadonlyMap<string, Method>
  readonly counters: ProducerCounters
  readonly logger: Logger
}

/** A reply's place in line; `text` is set when its work is done. */
interface Reply {
  text: string | undefined
}

type State = 'auth' | 'open' | 'draining' | 'closing' | 'ended'

/** After our FIN, how long the client has to close its side before the socket is destroyed, in ms. */
const END_GRACE_MS = 5000
/**
 * A graceful close sends its FIN after the client has been silent this long
 * (or after half the drain budget), in ms. Long enough that a client stalled
 * by a busy machine is not mistaken for one between bursts (25 ms lost a
 * burst of a tight stream under load).
 */
const DRAIN_QUIET_MS = 200

export class ProducerConnection {
  readonly #socket: Socket
  readonly #deps: ConnectionDeps
  readonly #log: Logger
  readonly #decoder: RespDecoder
  readonly #closed: Promise<void>
  #state: State = 'auth'
  /** Separate from #state: a client FIN before auth drains the connection, and its frames must still face auth. */
  #isAuthenticated = false
  /** No more frames will be served: the decoder failed, auth was refused, or draining emptied it. */
  #isInputDone = false
  /** The decoder failed: nothing more can be read from this stream. */
  #isFramingBroken = false
  #isWriteBlocked = false
  #isPaused = false
  /** Set while #pump runs, so that answers given inside it do not start a nested pump. */
  #isPumping = false
  readonly #replies: Reply[] = []
  /** Notifications whose work is not finished (requests are counted by #replies). */
  #notificationsInFlight = 0
  /**
   * A SERVED_ALONE frame was read and nothing after it has started since:
   * nothing more is read until `pending` is 0 (then #held starts, if any).
   */
  #isAlone = false
  /** The SERVED_ALONE frame read while earlier work was in flight; it starts once that is done. */
  #held: { readonly id: RpcId | undefined; readonly method: Method; readonly params: unknown } | undefined
  #outgoing: string[] = []
  #isFlushScheduled = false
  #timer: NodeJS.Timeout | undefined
  #lastDataAt = 0

  constructor(socket: Socket, deps: ConnectionDeps) {
    this.#socket = socket
    this.#deps = deps
    this.#log = deps.logger.child({ remote: `${socket.remoteAddress}:${socket.remotePort}` })
    this.#decoder = new RespDecoder(deps.options.maxFrameBytes)
    this.#closed = new Promise(resolve => socket.once('close', () => resolve()))

    socket.setNoDelay(true) // replies are already coalesced per tick
    socket.setKeepAlive(true) // finds dead peers; a live idle producer is never closed
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('drain', this.#onDrain)
    socket.on('error', this.#onError)
    socket.once('close', this.#onClose)
    this.#timer = setTimeout(this.#onAuthTimeout, deps.options.producerAuthTimeoutMs)
  }

  /** Resolves when the socket is closed. */
  get closed(): Promise<void> {
    return this.#closed
  }

  /** Requests and publishes in flight on this connection. */
  get pending(): number {
    return this.#replies.length + this.#notificationsInFlight
  }

  /** Bytes held for this connection: unread input, queued replies, the socket's write buffer. */
  get bufferedBytes(): number {
    let outgoing = 0
    for (const text of this.#outgoing) outgoing += text.length
    return this.#decoder.bufferedBytes + outgoing + this.#socket.writableLength
  }

  /**
   * Graceful end (listener close): read nothing more from the socket, serve
   * and answer every frame already received, then FIN. Resolves on close.
   */
  drain(): Promise<void> {
    if (!this.#isAuthenticated && this.#state !== 'ended') {
      // Not a 401: the client would give up for good; with id null it ignores this and reconnects.
      this.#isInputDone = true
      this.#decoder.discard()
      this.#answerError(null, 'SHUTTING_DOWN')
      this.#startDraining()
    } else this.#drainWhenQuiet(Date.now())
    return this.#closed
  }

  /**
   * Our FIN races with the client's writes: snapper-producer keeps writing
   * until it has processed the FIN, and what it writes in between is lost on
   * its side. So the FIN waits for a pause in the client's traffic (at most
   * half of drainTimeoutMs), while everything that arrives meanwhile is served as usual.
   */
  #drainWhenQuiet(since: number): void {
    if (this.#state !== 'open') return this.#startDraining()
    const now = Date.now()
    const waitMs = this.#deps.options.drainTimeoutMs / 2
    if (now - this.#lastDataAt >= DRAIN_QUIET_MS || now - since >= waitMs) return this.#startDraining()
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#drainWhenQuiet(since), DRAIN_QUIET_MS)
  }

  #onData = (chunk: Buffer): void => {
    this.#lastDataAt = Date.now()
    if (this.#state === 'closing') return this.#serveLate(chunk)
    if (this.#state === 'ended' || this.#isInputDone) return // input refused: dropped
    this.#decoder.push(chunk)
    this.#pump()
  }

  /** After our FIN: store the publish notifications the client sent before it saw it. */
  #serveLate(chunk: Buffer): void {
    if (!this.#isAuthenticated || this.#isFramingBroken) return
    this.#decoder.push(chunk)
    for (let frame = this.#decoder.next(); frame !== undefined; frame = this.#decoder.next()) {
      if (isFramingError(frame)) {
        this.#isFramingBroken = true
        return
      }
      this.#deps.counters.frames++
      const message = parseMessage(frame)
      const method = this.#deps.methods.get('publish')
      if (
        message.kind === 'notification' &&
        message.method === 'publish' &&
        message.params !== undefined &&
        method
      )
        this.#startNotification(method, message.params)
      else this.#deps.counters.ignored++
    }
  }

  /** Client FIN: what it sent is still served and answered (the server is allowHalfOpen). */
  #onEnd = (): void => {
    this.#startDraining()
  }

  #onDrain = (): void => {
    this.#isWriteBlocked = false
    this.#pump()
  }

  #onError = (err: Error): void => {
    // Resets and broken pipes are the peer's business; 'close' follows and cleans up.
    this.#log.debug({ err: err.message }, 'producer socket error')
  }

  #onClose = (): void => {
    clearTimeout(this.#timer)
    this.#setPaused(false)
    this.#state = 'ended'
    this.#decoder.discard()
    this.#outgoing = []
    // Work in flight still finishes in Redis; its answers have nowhere to go.
    this.#deps.counters.pending -= this.pending
    this.#replies.length = 0
    this.#notificationsInFlight = 0
    this.#held = undefined
  }

  #onAuthTimeout = (): void => {
    if (this.#isAuthenticated || this.#state === 'ended') return
    this.#log.info('producer auth timeout')
    this.#refuse(null, 'Error: Authentication timeout')
  }

  /** Serves decoded frames while allowed, then sets the socket's reading to match. */
  #pump(): void {
    if (this.#isPumping || this.#state === 'closing') return
    this.#isPumping = true
    if (this.#isAlone && this.pending === 0 && this.#state !== 'ended') {
      const held = this.#held
      this.#held = undefined
      if (held) this.#start(held.id, held.method, held.params)
      else this.#isAlone = false
    }
    while (!this.#isInputDone && this.#state !== 'ended' && this.#canTakeMore()) {
      const frame = this.#decoder.next()
      if (frame === undefined) {
        if (this.#state === 'draining') this.#isInputDone = true // no more reads: what was received is served
        break
      }
      if (isFramingError(frame)) this.#failFraming(frame)
      else this.#serve(frame)
    }
    this.#isPumping = false
    this.#setPaused(!this.#isInputDone && this.#state !== 'ended' && !this.#canTakeMore())
    this.#endIfDone()
  }

  #canTakeMore(): boolean {
    return !this.#isWriteBlocked && !this.#isAlone && this.pending < this.#deps.options.producerMaxPending
  }

  #serve(payload: Buffer): void {
    this.#deps.counters.frames++
    const message = parseMessage(payload)
    if (!this.#isAuthenticated) return this.#authenticate(message)
    switch (message.kind) {
      case 'invalid':
        return this.#answerError(message.id, message.code)
      case 'request': {
        const method = message.method === 'auth' ? undefined : this.#deps.methods.get(message.method)
        if (method === undefined) return this.#answerError(message.id, 'METHOD_NOT_FOUND')
        return this.#startInTurn(message.id, message.method, method, message.params)
      }
      case 'notification': {
        const method = this.#deps.methods.get(message.method)
        if (
          method === undefined ||
          message.method === 'auth' ||
          (message.method === 'publish' && message.params === undefined)
        ) {
          this.#deps.counters.ignored++
          this.#log.debug({ method: truncate(message.method, 64) }, 'notification ignored')
          return
        }
        return this.#startInTurn(undefined, message.method, method, message.params)
      }
    }
  }

  /** Starts a request (with an id) or a notification now, or, if it is served alone, once nothing else is in flight. */
  #startInTurn(id: RpcId | undefined, name: string, method: Method, params: unknown): void {
    if (SERVED_ALONE.has(name)) {
      this.#isAlone = true
      if (this.pending > 0) return void (this.#held = { id, method, params })
    }
    this.#start(id, method, params)
  }

  #start(id: RpcId | undefined, method: Method, params: unknown): void {
    if (id === undefined) this.#startNotification(method, params)
    else this.#startRequest(id, method, params)
  }

  #authenticate(message: ReturnType<typeof parseMessage>): void {
    if (message.kind !== 'request' || message.method !== 'auth')
      return this.#refuse(message.kind === 'notification' ? null : message.id, 'Error: Auth request expected')
    const token = Array.isArray(message.params) ? (message.params as unknown[])[0] : undefined
    const verified = this.#deps.tokens.verifyProducer(token)
    if (!verified.ok) return this.#refuse(message.id, verified.reason)
    clearTimeout(this.#timer)
    this.#isAuthenticated = true
    if (this.#state === 'auth') this.#state = 'open'
    const { id } = verified.claims
    this.#log.info(
      { producerId: typeof id === 'string' ? truncate(id, 64) : undefined },
      'producer authenticated',
    )
    this.#answer(this.#openReply(), encodeSuccess(message.id, 'OK'))
  }

  /**
   * 401 then FIN; frames sent behind the failed auth are dropped, as the
   * original did. With the auth request's id, snapper-producer gives up for
   * good (a bad secret will not heal); with id null (timeout, no auth request)
   * it ignores the reply and reconnects.
   */
  #refuse(id: RpcId | null, reason: string): void {
    clearTimeout(this.#timer)
    this.#count('UNAUTHORIZED')
    this.#log.info({ reason }, 'producer refused')
    this.#isInputDone = true
    this.#decoder.discard()
    this.#answer(this.#openReply(), encodeError(id, rpcError('UNAUTHORIZED', reason)))
    this.#startDraining()
  }

  /** The stream cannot be resynchronised: answer it after what came before, then close. */
  #failFraming(error: FramingError): void {
    this.#log.info({ code: error.code, detail: error.detail }, 'producer framing error')
    this.#isInputDone = true
    this.#isFramingBroken = true
    this.#answerError(null, error.code)
    this.#startDraining()
  }

  #startRequest(id: RpcId, method: Method, params: unknown): void {
    const reply = this.#openReply()
    invoke(method, params).then(
      // The original answered every falsy result as null (`res || null`): a count of 0 is null.
      result => this.#answer(reply, encodeSuccess(id, result || null)),
      (err: unknown) => {
        this.#count(errorCodeOf(err))
        this.#answer(reply, encodeError(id, toRpcError(err, this.#log)))
      },
    )
  }

  #startNotification(method: Method, params: unknown): void {
    this.#notificationsInFlight++
    this.#deps.counters.pending++
    invoke(method, params)
      .catch((err: unknown) => {
        // No id to answer: counted and logged (Redis faults are logged by ProducerApi too).
        this.#count(errorCodeOf(err))
        if (errorCodeOf(err) === 'INTERNAL') toRpcError(err, this.#log)
      })
      .finally(() => {
        if (this.#state === 'ended') return // #onClose has already uncounted it
        this.#notificationsInFlight--
        this.#deps.counters.pending--
        this.#pump()
      })
  }

  #answerError(id: RpcId | null, code: ErrorCode): void {
    this.#count(code)
    this.#answer(this.#openReply(), encodeError(id, rpcError(code)))
  }

  #openReply(): Reply {
    const reply: Reply = { text: undefined }
    this.#replies.push(reply)
    this.#deps.counters.pending++
    return reply
  }

  /** Completes a slot and sends every completed reply at the head of the line. */
  #answer(reply: Reply, json: string): void {
    if (this.#state === 'ended' || this.#state === 'closing') return
    reply.text = encodeBulk(json)
    let done = 0
    while (done < this.#replies.length && this.#replies[done]!.text !== undefined) {
      this.#outgoing.push(this.#replies[done]!.text!)
      done++
    }
    if (done === 0) return
    this.#replies.splice(0, done)
    this.#deps.counters.pending -= done
    if (!this.#isFlushScheduled) {
      this.#isFlushScheduled = true
      process.nextTick(this.#flush)
    }
    // Slots were freed: more frames may be served now.
    this.#pump()
  }

  /** One write for every reply completed in this tick. */
  #flush = (): void => {
    this.#isFlushScheduled = false
    this.#write()
    this.#pump()
  }

  #write(): void {
    if (this.#outgoing.length === 0 || this.#state === 'ended' || this.#state === 'closing') return
    const text = this.#outgoing.length === 1 ? this.#outgoing[0]! : this.#outgoing.join('')
    this.#outgoing = []
    if (!this.#socket.write(text)) this.#isWriteBlocked = true
  }

  #startDraining(): void {
    if (this.#state === 'ended' || this.#state === 'draining' || this.#state === 'closing') return
    this.#state = 'draining'
    clearTimeout(this.#timer)
    this.#socket.pause() // nothing more is read; what was received is still served
    this.#pump()
  }

  /** Draining and nothing left to serve or answer: write the last replies, then FIN. */
  #endIfDone(): void {
    if (this.#state !== 'draining' || !this.#isInputDone || this.pending > 0) return
    this.#write()
    this.#state = 'closing'
    this.#socket.end()
    // Keep reading: late publishes are stored, and closing with unread bytes would send RST,
    // which can destroy our last replies in flight.
    this.#socket.resume()
    this.#timer = setTimeout(() => this.#socket.destroy(), END_GRACE_MS).unref()
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
      if (this.#state !== 'draining') this.#socket.resume()
    }
  }

  #count(code: ErrorCode): void {
    const errors = this.#deps.counters.errors
    errors[code] = (errors[code] ?? 0) + 1
  }
}

/** Runs a method; a synchronous throw (a bug) becomes a rejection like any other. */
function invoke(method: Method, params: unknown): Promise<unknown> {
  try {
    return method(params)
  } catch (err) {
    return Promise.reject(err)
  }
}
