import type { Command, Pipeline } from 'ioredis'
import type { Logger } from '../log.js'
import type { ReplicatedWriter } from '../redis/connect.js'
import { isMoved } from '../redis/redirects.js'
import { TooFewReplicas, type ReplicaShortfalls } from './replica-shortfalls.js'

/** Replicas that must have a write before it counts as stored, and the writer that waits for them. */
export interface Replicas {
  readonly acks: number
  readonly timeoutMs: number
  readonly writer: ReplicatedWriter
  /** Where each WAIT's outcome is told: the log of servers whose replicas do not confirm. */
  readonly shortfalls: ReplicaShortfalls
}

/**
 * What became of one write: its command's own error or reply, and why its
 * pipeline's WAIT did not see enough replicas in time (undefined: it did).
 */
export interface Committed {
  readonly err: Error | null
  readonly reply: unknown
  readonly short: Error | undefined
}

interface Write {
  /** A key of the command, which names its server (every key of a command is on one slot). */
  readonly key: string
  /** Makes the command as it is written (OrderedAppends' `after` is read then). */
  readonly command: () => Command
  readonly resolve: (committed: Committed) => void
  readonly reject: (err: unknown) => void
}

/**
 * While a server is not connected, how often its writes look again, in ms. A
 * poll, not an event: a cluster does not pass on its node connections'
 * events, and the server of a key may change meanwhile.
 */
export const RECONNECT_POLL_MS = 20

/**
 * Writes that replicas must confirm (redisReplicaAcks > 0; README, Redis
 * Cluster), committed in groups, as databases do: per server, one pipeline
 * ending in WAIT at a time on the writer's connection. Redis holds a client
 * in WAIT until the replicas confirm or the timeout passes, and what is sent
 * behind it on that connection waits too; so the writes that come meanwhile
 * (appends, joins, leaves) are gathered and written as the next pipeline, with
 * one WAIT, once the one before answers: one timeout for all of them when a
 * replica is down, one round trip when it is not.
 *
 *   write ─▶ queue of its server ─(end of turn)─▶ WAIT in flight there? ─yes─▶ stays: sent when it answers
 *                                                       │ no
 *                    not connected: RECONNECT_POLL_MS ◀─┤
 *                    (a write whose server changed      ▼ connected
 *                     moves to the new one's queue)   pipeline: every queued write, in order, then WAIT
 *
 * Per server, writes are written in the order they came, so that a writer's
 * appends run in the order they were numbered; while a server is not
 * connected they wait (ioredis would fail its offline queue at each failed
 * reconnect: ReplicatedWriter.isConnected), and are never sent twice.
 */
export class GroupCommit {
  readonly replicas: Replicas
  readonly #log: Logger
  /** Writes not written yet, per server (as named when they came, or when last looked at), in order. */
  readonly #queued = new Map<string, Write[]>()
  /** Servers with a pipeline, and its WAIT, in flight. */
  readonly #inFlight = new Set<string>()
  #isFlushDue = false
  #poll: NodeJS.Timeout | undefined

  constructor(replicas: Replicas, log: Logger) {
    this.replicas = replicas
    this.#log = log
  }

  /**
   * Writes `command` (made as it is written) with the writes that come in
   * this turn or while its server's WAIT is in flight; resolves once its
   * pipeline answered, rejects if that pipeline failed as a whole (its
   * connection dropped: it may have run) or the command could not be made.
   */
  write(key: string, command: () => Command): Promise<Committed> {
    return new Promise((resolve, reject) => {
      this.#enqueue(this.replicas.writer.serverOf(key), { key, command, resolve, reject })
      if (this.#isFlushDue) return
      this.#isFlushDue = true
      queueMicrotask(() => {
        this.#isFlushDue = false
        this.#flush()
      })
    })
  }

  /** Writes waiting for a WAIT before them or for their server to connect (for tests). */
  get queuedWrites(): number {
    let count = 0
    for (const writes of this.#queued.values()) count += writes.length
    return count
  }

  #enqueue(server: string, write: Write): void {
    const writes = this.#queued.get(server)
    if (writes) writes.push(write)
    else this.#queued.set(server, [write])
  }

  /** Sends each server's queue that can go now; called from microtasks, timers and replies, so it never throws. */
  #flush(): void {
    let isWaiting = false
    for (const server of [...this.#queued.keys()]) {
      if (this.#inFlight.has(server)) continue
      try {
        if (this.replicas.writer.isConnected(server)) this.#send(server)
        else {
          this.#reroute(server)
          isWaiting = true // the moved ones go at the next look too
        }
      } catch (err) {
        // A bug, not Redis: its writes fail rather than wait for ever, and nothing escapes.
        this.#log.error({ err, server }, 'replicated write failed unexpectedly')
        for (const write of this.#queued.get(server) ?? []) write.reject(err)
        this.#queued.delete(server)
      }
    }
    if (isWaiting && !this.#poll)
      this.#poll = setTimeout(() => {
        this.#poll = undefined
        this.#flush()
      }, RECONNECT_POLL_MS)
  }

  /**
   * Moves the writes of a server that is not connected whose key another
   * server serves now (a failover) to the front of that one's queue: they
   * came before what was queued there since.
   */
  #reroute(server: string): void {
    const writes = this.#queued.get(server)!
    const moved = new Map<string, Write[]>()
    const staying: Write[] = []
    for (const write of writes) {
      const now = this.replicas.writer.serverOf(write.key)
      if (now === server) staying.push(write)
      else {
        // Pushed, not copied: a failover moves every write queued for the dead master (25,000 took 5.3 s copied).
        const to = moved.get(now)
        if (to) to.push(write)
        else moved.set(now, [write])
      }
    }
    if (moved.size === 0) return
    if (staying.length > 0) this.#queued.set(server, staying)
    else this.#queued.delete(server)
    for (const [to, first] of moved) this.#queued.set(to, [...first, ...(this.#queued.get(to) ?? [])])
  }

  /** Writes a server's queue as one pipeline ending in WAIT; the next goes once it answers. */
  #send(server: string): void {
    const writes = this.#queued.get(server)!
    this.#queued.delete(server)
    const { writer, acks, timeoutMs } = this.replicas
    const pipeline = writer.client.pipeline() as Pipeline
    const sent: Write[] = []
    for (const write of writes) {
      let command: Command
      try {
        command = write.command()
      } catch (err) {
        write.reject(err) // it would throw the same way every time: it fails alone
        continue
      }
      pipeline.sendCommand(command)
      sent.push(write)
    }
    if (sent.length === 0) return
    this.#inFlight.add(server)
    void pipeline
      .wait(acks, timeoutMs)
      .exec()
      .then(results => {
        if (!results) throw new Error('pipeline discarded')
        const short = unconfirmed(results[results.length - 1], this.replicas, server)
        // A slot moved: the writes sent again go where the map now says (redirected while it moves: the same place).
        if (results.some(([err]) => err !== null && isMoved(err))) writer.refreshSlots()
        sent.forEach((write, i) => {
          const [err, reply] = results[i]!
          write.resolve({ err, reply, short })
        })
      })
      .catch((err: unknown) => {
        for (const write of sent) write.reject(err)
      })
      .finally(() => {
        this.#inFlight.delete(server)
        this.#flush()
      })
  }
}

/**
 * Why a pipeline's final WAIT on `server` did not see `acks` replicas in time
 * (its error, or TooFewReplicas), or undefined if it did; either way told to
 * `shortfalls`.
 */
function unconfirmed(
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
