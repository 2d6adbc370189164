import type { Command, Pipeline } from 'ioredis'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ReplicatedWriter } from '../redis/connect.js'
import { isMoved } from '../redis/redirects.js'
import { TooFewReplicas, type ReplicaShortfalls } from './replica-shortfalls.js'

/** Replicas that must have an append before it counts as stored, and the writer that waits for them. */
export interface Replicas {
  readonly acks: number
  readonly timeoutMs: number
  readonly writer: ReplicatedWriter
  /** Where each WAIT's outcome is told: the log of servers whose replicas do not confirm. */
  readonly shortfalls: ReplicaShortfalls
}

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

interface Waiting<C, R> extends ReplicatedSend<C> {
  readonly resolve: (reply: R) => void
  readonly reject: (err: unknown) => void
}

/**
 * While the replicated writer is not connected, how often an append looks
 * again, in ms. A poll, not an event: a cluster does not pass on its node
 * connections' events, and the server of a room may change meanwhile.
 */
export const RECONNECT_POLL_MS = 20

/**
 * Appends that replicas must confirm (redisReplicaAcks > 0; README, Redis
 * Cluster): one pipeline per server, every call for it, then one WAIT. The
 * calls are written in order, so that a writer's calls run in the order they
 * were numbered; while a server they go to is not connected, they wait in
 * line and are sent in order once it is (as ioredis holds the other
 * commands through an outage). Each call's reply resolves once stored and
 * confirmed, and rejects with its own error (a redirect: it did not run) or
 * with its pipeline's (too few replicas: TooFewReplicas).
 *
 *   store ─▶ nobody waiting && servers connected ─yes─▶ send now
 *                     │ no
 *                     ▼
 *            line (FIFO) ─▶ head polls until connected ─▶ send, next
 */
export class ReplicatedAppends<C, R> {
  readonly #replicas: Replicas
  readonly #calls: ReplicatedCalls<C>
  /** Calls asked for one at a time in this turn (inTurn): one pipeline per server at its end. */
  #turn: Waiting<C, R>[] | undefined
  /** Sends waiting for the writer to connect, and when the last of them will have been sent. */
  #waiting = 0
  #line: Promise<void> = Promise.resolve()

  constructor(replicas: Replicas, calls: ReplicatedCalls<C>) {
    this.#replicas = replicas
    this.#calls = calls
  }

  /**
   * A call (or a call sent again) at the end of this turn, with the others
   * asked for so in it: OrderedAppends sends each on its own.
   */
  inTurn(call: C, afterIn: (room: string) => number): Promise<R> {
    let waiting = this.#turn
    if (!waiting) {
      const turn: Waiting<C, R>[] = (waiting = this.#turn = [])
      queueMicrotask(() => {
        this.#turn = undefined
        try {
          this.store(turn).forEach((reply, i) => reply.then(turn[i]!.resolve, turn[i]!.reject))
        } catch (err) {
          for (const send of turn) send.reject(err) // nothing escapes the microtask
        }
      })
    }
    const turn = waiting
    return new Promise((resolve, reject) => turn.push({ call, afterIn, resolve, reject }))
  }

  /** Sends calls now, or in line once their servers are connected. */
  store(sends: readonly ReplicatedSend<C>[]): Promise<R>[] {
    const stored = this.#waiting === 0 ? this.#send(sends) : undefined
    if (stored) return stored
    this.#waiting++
    const sent = this.#line.then(() => this.#sendWhenConnected(sends))
    const next = (): void => void this.#waiting--
    this.#line = sent.then(next, next)
    return sends.map((_, i) => sent.then(({ stored }) => stored[i]!))
  }

  /** Sends calls once every server they go to is connected; resolves (with their outcomes) once sent. */
  async #sendWhenConnected(sends: readonly ReplicatedSend<C>[]): Promise<{ stored: Promise<R>[] }> {
    for (;;) {
      const stored = this.#send(sends)
      if (stored) return { stored }
      await sleep(RECONNECT_POLL_MS)
    }
  }

  /** Sends calls, one pipeline per server; nothing, and undefined, if one of those servers is not connected. */
  #send(sends: readonly ReplicatedSend<C>[]): Promise<R>[] | undefined {
    const { writer, acks, timeoutMs } = this.#replicas
    const pipelines = new Map<string, { pipeline: Pipeline; calls: number[] }>()
    for (const [i, { call }] of sends.entries()) {
      const server = writer.serverOf(this.#calls.keyOf(call))
      let line = pipelines.get(server)
      if (!line) {
        if (!writer.isConnected(server)) return undefined
        pipelines.set(server, (line = { pipeline: writer.client.pipeline() as Pipeline, calls: [] }))
      }
      line.calls.push(i)
    }
    // Written only once every server is known to be connected: a call is numbered and ordered as it is written.
    for (const { pipeline, calls: indices } of pipelines.values())
      for (const i of indices) pipeline.sendCommand(this.#calls.commandOf(sends[i]!.call, sends[i]!.afterIn))
    const replies: Promise<R>[] = []
    for (const [server, { pipeline, calls: indices }] of pipelines) {
      const answered = pipeline
        .wait(acks, timeoutMs)
        .exec()
        .then(results => {
          if (!results) throw new Error('pipeline discarded')
          return { results, short: unconfirmed(results[results.length - 1], this.#replicas, server) }
        })
      indices.forEach(
        (call, k) =>
          (replies[call] = answered.then(({ results, short }) => {
            const [err, reply] = results[k]!
            // A call's own error first: one that did not run (a redirect) or stored nothing (OOM) says so.
            if (err) {
              // The slot moved: the next try goes where the map now says (a redirect while it moves: the same place).
              if (isMoved(err)) writer.refreshSlots()
              throw err
            }
            if (short) throw short
            return reply as R
          })),
      )
    }
    return replies
  }
}

/**
 * Why a pipeline's final WAIT on `server` did not see `acks` replicas in time
 * (its error, or TooFewReplicas), or undefined if it did; either way told to
 * `shortfalls`.
 */
export function unconfirmed(
  wait: readonly [Error | null, unknown] | undefined,
  { acks, shortfalls }: Pick<Replicas, 'acks' | 'shortfalls'>,
  server: string,
): Error | undefined {
  const [err, replicas] = wait ?? [null, undefined]
  if (err) return err
  if (typeof replicas !== 'number') return new Error(`WAIT answered ${String(replicas)}`)
  if (replicas < acks) {
    const short = new TooFewReplicas(replicas, acks, server)
    shortfalls.refused(short)
    return short
  }
  shortfalls.confirmed(server)
  return undefined
}
