/**
 * The work in flight on one producer connection, and its replies in request
 * order (reply-line.ts).
 *
 * Work starts as soon as its frame is read, without waiting for earlier
 * frames to finish (publish issues its Redis commands synchronously, so the
 * order is kept in Redis). `subscribe` and `unsubscribe` are the exception
 * (SERVED_ALONE): each one waits until every earlier frame's work is done,
 * and the connection reads nothing more until its own is (`isAlone`), so a
 * publish right after a subscribe reaches the consumer and one right after
 * an unsubscribe does not.
 */
import type { ErrorCode } from '../errors.js'
import { truncate, type Logger } from '../log.js'
import { countError, type ProducerCounters } from './counters.js'
import {
  encodeError,
  encodeSuccess,
  errorCodeOf,
  rpcError,
  toRpcError,
  type RpcId,
  type RpcMessage,
} from '../jsonrpc.js'
import { messagesOf, SERVED_ALONE, type Method } from './methods.js'
import { ReplyLine, type ReplySlot } from './reply-line.js'
import { encodeBulk } from './resp.js'
import type { Share } from './shares.js'

/**
 * What each message of a frame adds to its bytes in flight: its cost in Redis
 * (a log entry, its share of a script call) beside its bytes. Without it, a
 * 1 MiB bound held 85,000 one-byte messages to 1,000 rooms, seconds of Redis
 * work ahead of other producers (docs/producer-protocol.md §7).
 */
export const MESSAGE_WORK_BYTES = 1024

/** A frame's weight against producerMaxPendingBytes: its payload, plus MESSAGE_WORK_BYTES per message. */
export function workBytesOf(method: string, params: unknown, payloadBytes: number): number {
  return payloadBytes + MESSAGE_WORK_BYTES * messagesOf(method, params)
}

export interface InFlightDeps {
  readonly methods: ReadonlyMap<string, Method>
  readonly counters: ProducerCounters
  readonly log: Logger
  /** Every reply that left the line in one tick, joined: one socket write. */
  readonly send: (text: string) => void
  /** Work finished or replies left the line: the connection may read more. */
  readonly onProgress: () => void
  /**
   * This connection's part of the node's frames in flight, each weighed by
   * workBytesOf until its work is done, even once closed: its own bytes bound
   * the connection (producerMaxPendingBytes), the node's all of them.
   */
  readonly share: Pick<Share, 'hold' | 'release'>
}

/** A frame's work, read but not started yet. */
interface Work {
  readonly id: RpcId | undefined
  readonly method: Method
  readonly params: unknown
  /** Its frame's weight (workBytesOf), counted in the connection's share while the work runs. */
  readonly bytes: number
}

export class InFlight {
  readonly #deps: InFlightDeps
  readonly #replies: ReplyLine
  /** Notifications whose work is not finished (requests are counted by #replies). */
  #notifications = 0
  /**
   * Set when a SERVED_ALONE frame is read, cleared once its work is done.
   * `held` is that frame while earlier work is still in flight.
   */
  #alone: { held: Work | undefined } | undefined
  /** The socket is gone: work still finishes in Redis, but nothing is counted or answered. */
  #isClosed = false

  constructor(deps: InFlightDeps) {
    this.#deps = deps
    this.#replies = new ReplyLine(deps.send)
  }

  /** Requests and publishes in flight. */
  get pending(): number {
    return this.#replies.length + this.#notifications
  }

  /** A served-alone frame is waiting or running: nothing more may be read. */
  get isAlone(): boolean {
    return this.#alone !== undefined
  }

  /** Replies waiting for this tick's write, in UTF-16 units. */
  get readyLength(): number {
    return this.#replies.readyLength
  }

  /** Serves one message from an authenticated producer; `bytes` is its frame's payload size. */
  serve(message: RpcMessage, bytes: number): void {
    switch (message.kind) {
      case 'invalid':
        return this.answerError(message.id, message.code)
      case 'success':
      case 'error':
        return this.answerError(message.id, 'INVALID_REQUEST') // we never ask a producer anything
      case 'request': {
        const method = message.method === 'auth' ? undefined : this.#deps.methods.get(message.method)
        if (method === undefined) return this.answerError(message.id, 'METHOD_NOT_FOUND')
        return this.#startInTurn(message.method, {
          id: message.id,
          method,
          params: message.params,
          bytes: workBytesOf(message.method, message.params, bytes),
        })
      }
      case 'notification': {
        const method = this.#deps.methods.get(message.method)
        if (
          method === undefined ||
          message.method === 'auth' ||
          (message.method === 'publish' && message.params === undefined)
        ) {
          this.#deps.counters.ignored++
          this.#deps.log.debug({ method: truncate(message.method, 64) }, 'notification ignored')
          return
        }
        return this.#startInTurn(message.method, {
          id: undefined,
          method,
          params: message.params,
          bytes: workBytesOf(message.method, message.params, bytes),
        })
      }
    }
  }

  /** After our FIN: a `publish` notification is stored; anything else is ignored (it cannot be answered). */
  serveLate(message: RpcMessage, bytes: number): void {
    const method = this.#deps.methods.get('publish')
    if (
      message.kind === 'notification' &&
      message.method === 'publish' &&
      message.params !== undefined &&
      method
    )
      this.#startNotification(method, message.params, workBytesOf('publish', message.params, bytes))
    else this.#deps.counters.ignored++
  }

  /** Once nothing else is in flight: starts the held served-alone frame, or, its work done, lets reading go on. */
  startHeld(): void {
    if (this.#alone === undefined || this.pending > 0) return
    const { held } = this.#alone
    this.#alone.held = undefined
    if (held) this.#start(held)
    else this.#alone = undefined
  }

  answerResult(id: RpcId, result: unknown): void {
    this.#answer(this.#reserve(), encodeSuccess(id, result))
  }

  /** `reason` is the 401's `data` (UNAUTHORIZED only). */
  answerError(id: RpcId | null, code: ErrorCode, reason?: string): void {
    countError(this.#deps.counters, code)
    this.#answer(this.#reserve(), encodeError(id, rpcError(code, reason)))
  }

  /** Sends the replies ready now instead of at the end of the tick. */
  flush(): void {
    this.#replies.flush()
  }

  /** The socket is gone: uncounts what is in flight; answers to come have nowhere to go. */
  close(): void {
    this.#isClosed = true
    this.#deps.counters.pending -= this.pending
    this.#replies.clear()
    this.#notifications = 0
    this.#alone = undefined
  }

  #startInTurn(name: string, work: Work): void {
    if (SERVED_ALONE.has(name)) {
      this.#alone = { held: undefined }
      if (this.pending > 0) return void (this.#alone.held = work)
    }
    this.#start(work)
  }

  #start({ id, method, params, bytes }: Work): void {
    if (id === undefined) this.#startNotification(method, params, bytes)
    else this.#startRequest(id, method, params, bytes)
  }

  #startRequest(id: RpcId, method: Method, params: unknown, bytes: number): void {
    const slot = this.#reserve()
    this.#deps.share.hold(bytes)
    invoke(method, params).then(
      // The original answered every falsy result as null (`res || null`): a count of 0 is null.
      result => {
        this.#deps.share.release(bytes)
        this.#answer(slot, encodeSuccess(id, result || null))
      },
      (err: unknown) => {
        this.#deps.share.release(bytes)
        countError(this.#deps.counters, errorCodeOf(err))
        this.#answer(slot, encodeError(id, toRpcError(err, this.#deps.log)))
      },
    )
  }

  #startNotification(method: Method, params: unknown, bytes: number): void {
    this.#notifications++
    this.#deps.counters.pending++
    this.#deps.share.hold(bytes)
    invoke(method, params)
      .catch((err: unknown) => {
        // No id to answer: counted and logged (Redis faults are logged by ProducerApi too).
        countError(this.#deps.counters, errorCodeOf(err))
        if (errorCodeOf(err) === 'INTERNAL') toRpcError(err, this.#deps.log)
      })
      .finally(() => {
        this.#deps.share.release(bytes) // before the closed check: the share counts it until done
        if (this.#isClosed) return // close() has already uncounted it
        this.#notifications--
        this.#deps.counters.pending--
        this.#deps.onProgress()
      })
  }

  #reserve(): ReplySlot {
    this.#deps.counters.pending++
    return this.#replies.reserve()
  }

  /** Fills a reply's slot: it leaves at the end of the tick with every reply before it. */
  #answer(slot: ReplySlot, json: string): void {
    if (this.#isClosed) return
    const done = this.#replies.fill(slot, encodeBulk(json))
    if (done === 0) return
    this.#deps.counters.pending -= done
    this.#deps.onProgress() // slots were freed: more frames may be served now
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
