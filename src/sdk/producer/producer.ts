/**
 * The producer SDK: one TCP connection to a broker's producer port, speaking
 * RESP-framed JSON-RPC 2.0 (docs/producer-protocol.md), with every call a
 * promise.
 *
 *   call ─▶ waiting (FIFO) ─▶ sent (≤ maxInFlight) ─▶ answer ─▶ resolve / reject
 *                 ▲                │
 *                 └── connection lost: everything sent but unanswered goes
 *                     again, first and in order, once the next connection is in
 *
 * A batch split into chunks is calls that go in turn: a chunk leaves the
 * head of the queue only once the one before it is stored, and the calls
 * behind it wait too, so the order of calls stays the order of storage. A
 * chunk that fails drops the chunks after it unsent.
 *
 * The connection and its states (connect() dials) are connection.ts.
 *
 * A call past maxInFlight waits for a slot: its promise settles later, which
 * is the backpressure. Every call settles within requestTimeoutMs.
 */
import { Tokens } from '../../auth/token.js'
import { encodeBulk } from '../../producer/resp.js'
import { Emitter } from '../emitter.js'
import { checkedCount, checkedMs } from '../options.js'
import { fromRpcError, SDK_ERRORS, SnapperError } from '../errors.js'
import { Connection, type Reply } from './connection.js'
import { framesOf, isLargerThan } from './frames.js'
import { KeyedQueue } from './queue.js'
import { checked, CONSUMER_COUNTS, JOINED, RECEIPT, STORED, TRACKED } from './results.js'
import type {
  ConsumerCounts,
  ConsumerPlatform,
  ConsumerTokenClaims,
  ProducerEvents,
  ProducerOptions,
  ProducerState,
  Publication,
  Receipt,
  Tracked,
  TrackOptions,
} from './types.js'

/** One call: its frame is made once, and sent again as it is after a reconnect. */
interface Call {
  readonly id: number
  readonly frame: string
  readonly resolve: (result: unknown) => void
  readonly reject: (error: SnapperError) => void
  readonly timer: ReturnType<typeof setTimeout>
  /** The chunk before this one in its batch: this one is sent once that one is stored. */
  readonly after: Call | undefined
  /** The chunk after this one in its batch, dropped if this one fails. */
  follower?: Call
}

const USER_ID = /^[a-f0-9]{24}$/
const DEFAULT_CONSUMER_TOKEN_TTL_SEC = 2 * 24 * 3600
const PLATFORMS: readonly unknown[] = ['web', 'ios', 'android'] satisfies ConsumerPlatform[]

export class Producer extends Emitter<ProducerEvents> {
  readonly #tokens: Tokens | undefined
  readonly #maxInFlight: number
  readonly #requestTimeoutMs: number
  readonly #maxFrameBytes: number
  readonly #connection: Connection
  /** Waiting for a slot, by id, in the order they go. */
  readonly #waiting = new KeyedQueue<number, Call>()
  /** Sent and unanswered, in the order sent (a Map keeps insertion order). */
  readonly #inFlight = new Map<number, Call>()
  #nextId = 1
  #opened: Promise<void> | undefined
  #settleOpened: { resolve: () => void; reject: (error: SnapperError) => void } | undefined
  #closing: Promise<void> | undefined
  #idle: (() => void) | undefined

  constructor(options: ProducerOptions) {
    super()
    if (typeof options.id !== 'string' || options.id === '') throw new TypeError('Producer: `id` is required')
    if ((options.secret === undefined) === (options.token === undefined))
      throw new TypeError('Producer: give either `secret` or `token`')
    this.#tokens =
      options.secret === undefined
        ? undefined
        : new Tokens([options.secret], { algorithm: options.algorithm ?? 'HS256' })
    this.#maxInFlight = checkedCount('Producer', 'maxInFlight', options.maxInFlight ?? 1024)
    this.#requestTimeoutMs = checkedMs('Producer', 'requestTimeoutMs', options.requestTimeoutMs ?? 120_000)
    this.#maxFrameBytes = checkedCount('Producer', 'maxFrameBytes', options.maxFrameBytes ?? 1 << 20)
    const settings = {
      host: options.host ?? '127.0.0.1',
      port: checkedCount('Producer', 'port', options.port ?? 7700, 1, 65_535),
      id: options.id,
      tokens: this.#tokens,
      token: options.token,
      maxFrameBytes: this.#maxFrameBytes,
      reconnectMinMs: checkedMs('Producer', 'reconnectMinMs', options.reconnectMinMs ?? 100),
      reconnectMaxMs: checkedMs('Producer', 'reconnectMaxMs', options.reconnectMaxMs ?? 10_000),
    }
    this.#connection = new Connection(settings, {
      stateChanged: state => this.emit('state', state),
      error: error => this.emit('error', error),
      opened: () => this.#onOpen(),
      refused: error => this.#shut(error),
      answered: (id, reply) => this.#settle(id, reply),
      tooLarge: error => this.#refuseOldest(error),
      lost: () => this.#onLost(),
    })
  }

  get state(): ProducerState {
    return this.#connection.state
  }

  /** Calls sent and not answered yet, and calls waiting for a slot. */
  get pending(): { readonly inFlight: number; readonly waiting: number } {
    return { inFlight: this.#inFlight.size, waiting: this.#waiting.size }
  }

  /**
   * Connects and authenticates. Resolves once the broker accepted the token;
   * rejects with SnapperError 401 if it refused it (the producer is then
   * closed), or CLOSED if close() came first. A broker that cannot be reached
   * is retried with backoff meanwhile. Calls made before need not wait for it.
   */
  connect(): Promise<void> {
    if (this.#connection.state === 'closed') return Promise.reject(closedError())
    if (this.#opened) return this.#opened
    this.#opened = new Promise((resolve, reject) => {
      this.#settleOpened = { resolve, reject }
    })
    this.#opened.catch(() => {}) // the caller of connect() gets the rejection; this is not unhandled
    this.#connection.dial()
    return this.#opened
  }

  /** Publishes one message. Resolves with 1 once it is stored in Redis. */
  publish(room: string, message: string): Promise<number>
  /**
   * Publishes a batch, per room in the order given. Resolves with the number
   * stored (pairs that are not two non-empty strings within the broker's
   * limits are skipped). A batch larger than one frame goes in several, one
   * after the other: if one fails, those after it are not sent, and the
   * rejection's `storedUpTo` says how many publications from the batch's
   * start were stored (or skipped).
   */
  publish(batch: readonly Publication[]): Promise<number>
  async publish(roomOrBatch: string | readonly Publication[], message?: string): Promise<number> {
    if (typeof roomOrBatch === 'string') {
      const count = checked('publish', STORED, await this.#call('publish', [roomOrBatch, message]))
      if (count !== 1)
        throw new SnapperError(-32602, 'Invalid params', {
          reason: 'room and message must be non-empty strings within the broker limits',
        })
      return 1
    }
    const chunks = framesOf(roomOrBatch, this.#maxFrameBytes)
    const answers = this.#callsInTurn('publish', chunks)
    for (const answer of answers) answer.catch(() => {}) // the loop reports the first failure; the rest share it
    let count = 0
    let storedUpTo = 0
    for (const [index, answer] of answers.entries()) {
      let stored: number | null
      try {
        stored = checked('publish', STORED, await answer)
      } catch (error) {
        throw withStoredUpTo(error as SnapperError, storedUpTo) // calls reject with SnapperErrors only
      }
      count += stored ?? 0
      storedUpTo += chunks[index]!.length
    }
    return count
  }

  /** Joins a consumer to a room: 1 if it joined, null if it was in already. */
  async subscribe(room: string, consumerId: string): Promise<1 | null> {
    return checked('subscribe', JOINED, await this.#call('subscribe', [room, consumerId]))
  }

  /** Takes a consumer out of a room: 1 if it left, null if it was not in. */
  async unsubscribe(room: string, consumerId: string): Promise<1 | null> {
    return checked('unsubscribe', JOINED, await this.#call('unsubscribe', [room, consumerId]))
  }

  /** A user's live connections, on every node. */
  async consumers(userId: string): Promise<ConsumerCounts> {
    return checked('consumers', CONSUMER_COUNTS, await this.#call('consumers', [userId]))
  }

  /** Publishes a message whose acknowledgements the broker records; resolves once it is stored. */
  async track(room: string, message: string, options: TrackOptions = {}): Promise<Tracked> {
    // JSON would send NaN or Infinity as null, which the broker takes for "no escalation".
    const { escalateAfterMs } = options
    if (escalateAfterMs !== undefined && !Number.isFinite(escalateAfterMs))
      throw new SnapperError(
        SDK_ERRORS.BAD_INPUT,
        `escalateAfterMs must be a number of ms, got ${escalateAfterMs}`,
      )
    return checked('track', TRACKED, await this.#call('track', [room, message, options]))
  }

  /** Who acknowledged a tracked message so far, and whether it was escalated. */
  async receipt(id: string): Promise<Receipt> {
    return checked('receipt', RECEIPT, await this.#call('receipt', [id]))
  }

  /** A consumer token for `new Consumer(url, {token})`, signed with this producer's secret. */
  signConsumerToken(claims: ConsumerTokenClaims): string {
    if (!this.#tokens)
      throw new SnapperError(SDK_ERRORS.BAD_INPUT, 'a producer made with `token` cannot sign: give `secret`')
    if (typeof claims.userId !== 'string' || !USER_ID.test(claims.userId))
      throw new SnapperError(SDK_ERRORS.BAD_INPUT, 'userId must be 24 lowercase hex digits')
    const payload: Record<string, unknown> = { userId: claims.userId }
    if (claims.source !== undefined) {
      // The gateway counts any other source by its first letter: 'mobile' would be web, 'iPhone' ios.
      if (!PLATFORMS.includes(claims.source))
        throw new SnapperError(SDK_ERRORS.BAD_INPUT, "source must be 'web', 'ios' or 'android'")
      payload.source = claims.source
    }
    const expiresInSec = claims.expiresInSec ?? DEFAULT_CONSUMER_TOKEN_TTL_SEC
    if (!Number.isSafeInteger(expiresInSec) || expiresInSec <= 0)
      throw new SnapperError(SDK_ERRORS.BAD_INPUT, 'expiresInSec must be a whole number of seconds above 0')
    return this.#tokens.sign(payload, expiresInSec)
  }

  /**
   * Waits until every call made so far has settled, then closes the
   * connection. Meanwhile the producer goes on connecting or reconnecting to
   * get them answered, so each settles as it would have without close(): its
   * answer, or TIMEOUT requestTimeoutMs after it was made, or a refused
   * token's 401. Calls made after close() reject with SDK_ERRORS.CLOSED.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing
    this.#closing = (async () => {
      if (!this.#isIdle()) await new Promise<void>(resolve => (this.#idle = resolve))
      this.#shut(closedError())
    })()
    return this.#closing
  }

  // ---- calls ----

  #call(method: string, params: unknown): Promise<unknown> {
    return this.#callsInTurn(method, [params])[0]!
  }

  /**
   * One call per params, in that order; each after the first is sent once the
   * one before it is answered without error, and is dropped unsent (with that
   * call's error) if it is not.
   */
  #callsInTurn(method: string, paramsList: readonly unknown[]): Promise<unknown>[] {
    const refuseAll = (error: SnapperError): Promise<unknown>[] => paramsList.map(() => Promise.reject(error))
    if (this.#connection.state === 'closed' || this.#closing) return refuseAll(closedError())
    const firstId = this.#nextId
    this.#nextId += paramsList.length
    const payloads = paramsList.map((params, index) =>
      JSON.stringify({ jsonrpc: '2.0', id: firstId + index, method, params }),
    )
    if (payloads.some(payload => isLargerThan(payload, this.#maxFrameBytes)))
      return refuseAll(
        new SnapperError(SDK_ERRORS.BAD_INPUT, 'Frame too large', {
          reason: `the call is larger than maxFrameBytes (${this.#maxFrameBytes})`,
        }),
      )
    if (this.#connection.state === 'idle') void this.connect().catch(() => {}) // its error rejects these calls too
    let after: Call | undefined
    const answers = payloads.map(
      (payload, index) =>
        new Promise<unknown>((resolve, reject) => {
          const id = firstId + index
          const timer = setTimeout(() => this.#timeout(id), this.#requestTimeoutMs)
          const call: Call = { id, frame: encodeBulk(payload), resolve, reject, timer, after }
          if (after) after.follower = call
          this.#waiting.push(id, call)
          after = call
        }),
    )
    this.#pump()
    return answers
  }

  /** Sends waiting calls while the connection is up and slots are free. */
  #pump(): void {
    if (!this.#connection.isOpen) return
    let frames = ''
    for (
      let call = this.#waiting.first;
      call && this.#inFlight.size < this.#maxInFlight;
      call = this.#waiting.first
    ) {
      // A chunk waits for the answer to the one before it, and the calls behind it wait too: order is kept.
      if (call.after && this.#inFlight.has(call.after.id)) break
      this.#waiting.delete(call.id)
      this.#inFlight.set(call.id, call)
      frames += call.frame
    }
    if (frames !== '') this.#connection.write(frames)
  }

  #settle(id: number, reply: Reply): void {
    const call = this.#inFlight.get(id)
    if (!call) return // timed out meanwhile
    this.#inFlight.delete(id)
    clearTimeout(call.timer)
    if (reply.error !== undefined) this.#failCall(call, fromRpcError(reply.error))
    else call.resolve(reply.result)
    this.#pump()
    this.#checkIdle()
  }

  /**
   * The broker refused the oldest call in flight, and closes the connection: that call fails (sent
   * again, it would be refused again, on every connection until it timed out), the rest go again.
   */
  #refuseOldest(error: SnapperError): void {
    const oldest = this.#inFlight.values().next().value
    if (!oldest) return
    this.#inFlight.delete(oldest.id)
    clearTimeout(oldest.timer)
    this.#failCall(oldest, error)
    this.#checkIdle()
  }

  /** Rejects a call, and drops the calls that were to follow it (the rest of its batch) unsent. */
  #failCall(call: Call, error: SnapperError): void {
    call.reject(error)
    // Not a search of #waiting for each failed call: many calls timing out together (a broker out of
    // reach for a while) would take time quadratic in their number.
    for (let follower = call.follower; follower !== undefined; follower = follower.follower) {
      if (!this.#waiting.delete(follower.id)) return // settled already, and its followers with it
      clearTimeout(follower.timer)
      follower.reject(error)
    }
  }

  /** Nothing in flight, nothing waiting. */
  #isIdle(): boolean {
    return this.#inFlight.size + this.#waiting.size === 0
  }

  /** close() waits for this. */
  #checkIdle(): void {
    if (this.#idle && this.#isIdle()) this.#idle()
  }

  #timeout(id: number): void {
    const call = this.#inFlight.get(id) ?? this.#waiting.get(id)
    if (!call) return
    this.#inFlight.delete(id)
    this.#waiting.delete(id)
    this.#failCall(
      call,
      new SnapperError(SDK_ERRORS.TIMEOUT, `no answer within ${this.#requestTimeoutMs} ms`, {
        isTemporary: true,
      }),
    )
    this.#pump()
    this.#checkIdle()
  }

  // ---- the connection ----

  /** The broker accepted the token. */
  #onOpen(): void {
    this.#settleOpened?.resolve()
    this.#settleOpened = undefined
    // What the last connection left unanswered goes first, in its order.
    this.#waiting.unshift(this.#inFlight)
    this.#inFlight.clear()
    this.#pump()
    this.#checkIdle()
  }

  /** The connection redials unless this closes it; closing with calls unanswered, they get the next connection. */
  #onLost(): void {
    if (this.#closing && this.#isIdle()) this.#shut(closedError())
  }

  /** Closes for good: every call not answered is rejected with `error`. */
  #shut(error: SnapperError): void {
    if (this.#connection.state === 'closed') return
    this.#connection.close()
    this.#settleOpened?.reject(error)
    this.#settleOpened = undefined
    for (const call of [...this.#inFlight.values(), ...this.#waiting.values()]) {
      clearTimeout(call.timer)
      call.reject(error)
    }
    this.#inFlight.clear()
    this.#waiting.clear()
    this.#idle?.()
  }
}

function closedError(): SnapperError {
  return new SnapperError(SDK_ERRORS.CLOSED, 'the producer is closed')
}

/** A batch's failure: the chunk's error, saying how many publications before that chunk were stored. */
function withStoredUpTo(error: SnapperError, storedUpTo: number): SnapperError {
  const { code, message, reason, detail, isTemporary, cause } = error
  const options = cause === undefined ? undefined : { cause }
  return new SnapperError(code, message, { reason, detail, isTemporary, storedUpTo }, options)
}
