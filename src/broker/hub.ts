import { guard } from '../guard.js'
import type { NodeContext } from './node-context.js'
import type { Batch } from './batch.js'
import type { ConsumerSink, Outbox } from './outbox.js'

/** How long a batch the consumer answered with an error waits before it goes again, in ms. */
const NACK_RETRY_MS = 1000
/** How often the batches in flight are held against the ack timeout, in ms. */
const ACK_CHECK_MS = 1000

/**
 * The consumers whose live session this node holds, by consumer id, and what
 * passes between a session and its outbox: which session delivers, nacks,
 * the ack timeout, closing them all. In memory only (centrifuge keeps its
 * hub apart the same way): Redis is the consumer store's, announcements are
 * the fan-out's. At most one outbox per consumer; a released outbox is never
 * held again (a reconnect makes a new one).
 */
export class Hub<S extends ConsumerSink> {
  readonly #outboxes = new Map<string, Outbox<S>>()
  readonly #ackTimeoutMs: number
  readonly #context: NodeContext
  /** The nack retry each outbox has armed, for which batch and session: one timer, however many nacks. */
  readonly #retrying = new Map<Outbox<S>, { readonly batch: Batch; readonly sink: S | undefined }>()
  #timer: NodeJS.Timeout | undefined

  constructor(ackTimeoutMs: number, context: NodeContext) {
    this.#ackTimeoutMs = ackTimeoutMs
    this.#context = context
  }

  /** Live consumers. */
  get size(): number {
    return this.#outboxes.size
  }

  get(consumerId: string): Outbox<S> | undefined {
    return this.#outboxes.get(consumerId)
  }

  /** Whether `outbox` is its consumer's outbox here: neither released nor replaced. */
  holds(outbox: Outbox<S>): boolean {
    return this.#outboxes.get(outbox.consumerId) === outbox
  }

  add(outbox: Outbox<S>): void {
    this.#outboxes.set(outbox.consumerId, outbox)
  }

  /** Stops holding `outbox`; false if it was not held. */
  remove(outbox: Outbox<S>): boolean {
    if (!this.holds(outbox)) return false
    this.#outboxes.delete(outbox.consumerId)
    return true
  }

  values(): IterableIterator<Outbox<S>> {
    return this.#outboxes.values()
  }

  /** Messages waiting in the outboxes (not yet sent). */
  backlog(): number {
    let queued = 0
    for (const outbox of this.#outboxes.values()) queued += outbox.queued
    return queued
  }

  /**
   * The session of `sink` opened: deliver through it from now on (the batch in
   * flight again, same id). False if the outbox is not held any more.
   */
  attach(outbox: Outbox<S>, sink: S): boolean {
    if (!this.holds(outbox)) return false
    outbox.sink = sink
    outbox.resend()
    return true
  }

  /**
   * The consumer answered a batch with an error: send its messages again
   * shortly under a new id, since clients drop a batch whose id they just saw.
   * False for another batch, or an outbox released (the batch goes again, same
   * id, where its consumer reconnects). A nack of a batch already waiting to go again
   * arms nothing more: a client may send thousands a second within its input budget.
   */
  nack(outbox: Outbox<S>, batchId: unknown): boolean {
    const { inflight, sink } = outbox
    if (inflight === undefined || inflight.id !== batchId || !this.holds(outbox)) return false
    const armed = this.#retrying.get(outbox)
    if (armed?.batch === inflight && armed.sink === sink) return true
    const retry = { batch: inflight, sink }
    this.#retrying.set(outbox, retry)
    setTimeout(
      guard(this.#context.log, 'nack retry', () => {
        if (this.#retrying.get(outbox) === retry) this.#retrying.delete(outbox)
        // Unless it was acknowledged or went to a new session (which got it again, same id) meanwhile.
        if (outbox.inflight === inflight && outbox.sink === sink) outbox.retry()
      }),
      NACK_RETRY_MS,
    ).unref()
    return true
  }

  /** Starts holding batches in flight against the ack timeout. */
  start(): void {
    this.#timer ??= setInterval(
      guard(this.#context.log, 'ack timeout check', () => this.closeOverdue()),
      ACK_CHECK_MS,
    ).unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /** Closes the session of every consumer whose batch in flight is older than the ack timeout. */
  closeOverdue(): void {
    const deadline = Date.now() - this.#ackTimeoutMs
    for (const outbox of this.#outboxes.values()) {
      if (outbox.inflight !== undefined && outbox.inflightSince < deadline) {
        this.#context.counters.ackTimeouts++
        outbox.sink?.close('ack timeout')
      }
    }
  }

  /**
   * Closes every session, spread over `spreadMs` so that they do not all
   * reconnect at once; `retryAfterMs` goes to clients that can hear it.
   */
  closeAll(reason: string, spreadMs: number, retryAfterMs?: number): Promise<void> {
    const closing = [...this.#outboxes.values()].map(
      outbox =>
        new Promise<void>(resolve => {
          const close = guard(this.#context.log, 'drain close', () =>
            outbox.sink?.close(reason, retryAfterMs),
          )
          setTimeout(() => {
            close()
            resolve()
          }, Math.random() * spreadMs)
        }),
    )
    return Promise.all(closing).then(() => {})
  }
}
