import type { Command } from 'ioredis'
import { isMoved } from '../redis/redirects.js'
import type { GroupCommit } from './group-commit.js'

/** How RoomLog's calls are written through the writer. */
export interface ReplicatedCalls<C> {
  /** A key of the call, which names its server (every key of a call is on one slot). */
  keyOf(call: C): string
  /** The command for `call`, each room following `afterIn(room)`: made as it is written, numbered then. */
  commandOf(call: C, afterIn: (room: string) => number): Command
}

/** A call to send, each room following `afterIn(room)` (evaluated as it is written). */
export interface ReplicatedSend<C> {
  readonly call: C
  readonly afterIn: (room: string) => number
}

/**
 * Appends that replicas must confirm (redisReplicaAcks > 0; README, Redis
 * Cluster), through the node's GroupCommit: per server, the calls of a turn,
 * and those that come while a WAIT there is in flight, go as one pipeline
 * ending in WAIT, in the order they were made (so that a writer's calls run in
 * the order they were numbered), and wait while the server is not connected.
 * Each call's reply resolves once stored and confirmed, and rejects with its
 * own error (a redirect: it did not run) or with its pipeline's (too few
 * replicas: TooFewReplicas).
 */
export class ReplicatedAppends<C, R> {
  readonly #commit: GroupCommit
  readonly #calls: ReplicatedCalls<C>

  constructor(commit: GroupCommit, calls: ReplicatedCalls<C>) {
    this.#commit = commit
    this.#calls = calls
  }

  /** Sends calls, in order: each with the others of its server's next pipeline. */
  store(sends: readonly ReplicatedSend<C>[]): Promise<R>[] {
    return sends.map(({ call, afterIn }) => this.send(call, afterIn))
  }

  /** Sends one call (or sends it again: OrderedAppends does so on its own) with its server's next pipeline. */
  async send(call: C, afterIn: (room: string) => number): Promise<R> {
    const { err, reply, short } = await this.#commit.write(this.#calls.keyOf(call), () =>
      this.#calls.commandOf(call, afterIn),
    )
    // A call's own error first: one that did not run (a redirect) or stored nothing (OOM) says so.
    if (err) {
      // The slot moved: the next try goes where the map now says (a redirect while it moves: the same place).
      if (isMoved(err)) this.#commit.replicas.writer.refreshSlots()
      throw err
    }
    if (short) throw short
    return reply as R
  }
}
