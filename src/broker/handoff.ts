import { guard } from '../guard.js'
import type { BrokerCore } from './core.js'
import type { Hub } from './hub.js'
import type { NodeContext } from './node-context.js'
import type { ConsumerSink, Outbox } from './outbox.js'

/** The parts of a node a handoff works with, by name (BrokerNode wires them). */
export interface HandoffDeps<S extends ConsumerSink> {
  /** The node's id, which kicks and `released` answers name. */
  readonly nodeId: string
  readonly core: Pick<BrokerCore, 'membership' | 'presence'>
  /** The outboxes held here: a kick closes the consumer's. */
  readonly hub: Hub<S>
  /** Releases a closed session's outbox; resolves once its cursors are committed. */
  readonly disconnect: (outbox: Outbox<S>, sink: S) => Promise<void>
  /** The consumer's release under way here (a close, a drain), if any. */
  readonly releasing: (consumerId: string) => Promise<void> | undefined
  readonly context: NodeContext
  /** Longest a connecting consumer waits for the node that held it to persist its cursors, in ms. */
  readonly takeoverWaitMs: number
}

/**
 * Moving a consumer's live session from one node to another, over the nodes'
 * control channels, so that the new node reads cursors that include the
 * last acknowledgements made on the old one:
 *
 *   new node (connect)                      old node
 *     holder alive? ── kick(consumer) ────▶ close the session, commit its
 *     wait ≤ takeoverWaitMs                 cursors and batch in flight
 *          ◀──────────── released(consumer) ┘
 *     consumer_connect-3.lua: read the cursors, name this node
 *
 * A node that holds the session when the script runs (one that took it
 * meanwhile, or the holder asked, which took it again) is kicked without
 * waiting: it closes its session at once. The invariants it keeps:
 * docs/ARCHITECTURE.md, Invariants, Handoff.
 */
export class Handoff<S extends ConsumerSink> {
  readonly #nodeId: string
  readonly #core: Pick<BrokerCore, 'membership' | 'presence'>
  readonly #hub: Hub<S>
  readonly #disconnect: (outbox: Outbox<S>, sink: S) => Promise<void>
  readonly #releasing: (consumerId: string) => Promise<void> | undefined
  readonly #context: NodeContext
  readonly #takeoverWaitMs: number
  /** Consumers this node is taking over, waiting for the old node's `released`. */
  readonly #takeovers = new Map<string, () => void>()

  constructor(deps: HandoffDeps<S>) {
    this.#nodeId = deps.nodeId
    this.#core = deps.core
    this.#hub = deps.hub
    this.#disconnect = deps.disconnect
    this.#releasing = deps.releasing
    this.#context = deps.context
    this.#takeoverWaitMs = deps.takeoverWaitMs
  }

  /** Takeovers waiting for a `released` (a leak check's reading). */
  get size(): number {
    return this.#takeovers.size
  }

  /**
   * `holder` holds the session of a consumer that connects here: unless it
   * is this node or dead, ask it to release the consumer, and wait (a
   * bounded time) until it has. False if it was not asked.
   */
  async takeOver(consumerId: string, holder: string | null): Promise<boolean> {
    if (!holder || holder === this.#nodeId || !(await this.#core.presence.isNodeAlive(holder))) return false
    const takeovers = this.#takeovers
    await new Promise<void>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        // Not a later takeover of the consumer's wait, which replaced this one (and ended it).
        if (takeovers.get(consumerId) === done) takeovers.delete(consumerId)
        resolve()
      }
      const timer = setTimeout(guard(this.#context.log, 'takeover wait', done), this.#takeoverWaitMs)
      timer.unref() // a process stopping need not wait for it
      takeovers.get(consumerId)?.()
      takeovers.set(consumerId, done)
      this.#sendKick(holder, consumerId).catch(err => {
        this.#context.redisError(err, 'kick failed')
        done()
      })
    })
    return true
  }

  /** `node` holds the consumer's session (took it meanwhile, or again): it closes it without waiting for anything. */
  kick(node: string, consumerId: string): void {
    this.#sendKick(node, consumerId).catch(err => this.#context.redisError(err, 'kick failed'))
  }

  /** A `kick` for this node: close the consumer's session here (if any), commit it, and say so. */
  async onKick(consumerId: string, byNode: string): Promise<void> {
    const outbox = this.#hub.get(consumerId)
    if (outbox) {
      this.#context.counters.kicks++
      const sink = outbox.sink
      sink?.close('taken over by another node')
      if (sink) await this.#disconnect(outbox, sink)
    } else {
      // Released here already (a close, the drain), perhaps not committed yet: the node taking it
      // over reads its cursors and batch in flight once `released` comes, so only then.
      await this.#releasing(consumerId)
    }
    await this.#core.membership
      .tell(byNode, { type: 'released', consumerId })
      .catch(err => this.#context.redisError(err, 'release notice failed'))
  }

  /** A `released` for this node: the takeover of that consumer may go on. */
  onReleased(consumerId: string): void {
    this.#takeovers.get(consumerId)?.()
  }

  #sendKick(node: string, consumerId: string): Promise<unknown> {
    return this.#core.membership.tell(node, { type: 'kick', consumerId, byNode: this.#nodeId })
  }
}
