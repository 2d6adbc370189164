import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ReplicatedWriter } from '../redis/connect.js'
import type { Keys } from '../redis/keys.js'
import type { Commands, ScriptPipeline } from '../redis/scripts.js'
import { formatCursor, ORIGIN, parseCursor, type Cursor } from './cursor.js'
import { OrderedAppends } from './ordered-appends.js'

/** A message read from a room log; made with the shape of the fan-out's entries, so outboxes queue it as is. */
export interface LogEntry extends Cursor {
  readonly room: string
  readonly message: string
  /** The nonce of a tracked message (its receipts are recorded on ack); undefined for the others. */
  readonly track: string | undefined
  /** The last message its append call stored in the room. */
  readonly isCallEnd?: boolean
}

/** The arguments of one room_append call. */
type AppendCall = Parameters<Commands['roomAppend']>

export interface RoomLogOptions {
  /** Messages a room keeps at most. */
  readonly maxLen: number
  /** Bytes of messages one read returns at most (but always one message). */
  readonly readMaxBytes: number
  /** Bytes of messages a room keeps at most. */
  readonly maxBytes: number
  /** How long a room keeps a message, in seconds. */
  readonly ttlSec: number
  /** The command the append script announces with (PubSub.publishCommand). */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH'
  /**
   * Whether a call ioredis sends again runs before later ones
   * (RedisClients.resendsInOrder); if not, the log orders its calls itself
   * (OrderedAppends) and sends again those that failed for a reason that passes.
   */
  readonly resendsInOrder: boolean
  /** Whether a call that failed this way may be stored if sent again (RedisClients.isPassing). */
  readonly isPassing: (err: unknown) => boolean
  /**
   * Replicas that must have a batch before it counts as stored (WAIT on each
   * server the batch went to, through `writer`). Absent: the master's reply is enough.
   */
  readonly replicas?: { readonly acks: number; readonly timeoutMs: number; readonly writer: ReplicatedWriter }
}

/** Where an AppendCall holds its call number, and the call it must follow (OrderedAppends). */
const CALL = 9
const AFTER = 10

/** Messages per script call: a huge batch for one room must not stall Redis for long. */
const APPEND_CHUNK = 256

/**
 * While the replicated writer is not connected, how often an append looks
 * again, in ms. A poll, not an event: a cluster does not pass on its node
 * connections' events, and the server of a room may change meanwhile.
 */
const RECONNECT_POLL_MS = 20

/**
 * The per-room log in Redis: a stream bounded by length, bytes and age, whose ids
 * carry a contiguous sequence number. One append is one script call on the
 * room's slot, whatever the room's size: fan-out happens in the nodes.
 */
export class RoomLog {
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #options: RoomLogOptions
  /**
   * Numbers every script call, so that a call sent again after a lost reply
   * is stored once (room_append-4.lua). That needs a writer's calls to a room
   * to run in the order they were numbered, or a call retried after later
   * ones ran would be skipped though it never was: one Redis keeps the order;
   * on a Cluster, `#ordered` does. Appends that wait for replicas are not
   * numbered on a Cluster: their writer does not order them.
   */
  readonly #writer: string
  #calls = 0
  /** On a Cluster: each room's calls in order, sent again until stored. */
  readonly #ordered: OrderedAppends | undefined
  /** Replicated appends waiting for the writer to connect, and when the last of them will have been sent. */
  #waiting = 0
  #line: Promise<void> = Promise.resolve()

  constructor(redis: Commands, keys: Keys, options: RoomLogOptions) {
    this.#redis = redis
    this.#keys = keys
    this.#options = options
    const isOrdered = !options.resendsInOrder && !options.replicas
    this.#ordered = isOrdered ? new OrderedAppends(options.isPassing) : undefined
    this.#writer = options.resendsInOrder || isOrdered ? randomBytes(9).toString('base64url') : ''
  }

  /**
   * Appends a producer batch, grouped by room; per room, in order. Rejects if
   * any append fails or if fewer replicas than asked confirmed in time: the
   * messages may then be stored or not, and a retry may store them twice.
   */
  appendAll(byRoom: ReadonlyMap<string, readonly string[]>): Promise<void> {
    const calls: AppendCall[] = []
    for (const [room, messages] of byRoom) calls.push(...this.#appendCalls(room, messages, ''))
    return this.#store(calls)
  }

  /**
   * Appends one tracked message: its log entry and its announcement carry
   * `nonce`, and its track hash is made with it (room_append-4.lua).
   */
  appendTracked(room: string, message: string, nonce: string): Promise<void> {
    return this.#store(this.#appendCalls(room, [message], nonce))
  }

  /**
   * Sends script calls: at once (on a Cluster through `#ordered`, which sends
   * them again until stored), or, when replicas must confirm, one pipeline
   * per server (every call for it, then one WAIT). The calls are issued before
   * this returns, so calls made one after another keep their order; or, with
   * replicas, while a server they go to is not connected, they wait in line
   * and are sent in order once it is (as ioredis holds the others' commands
   * through an outage).
   *
   *   #store ─▶ nobody waiting && servers connected ─yes─▶ send now
   *                     │ no
   *                     ▼
   *            line (FIFO) ─▶ head polls until connected ─▶ send, next
   */
  #store(calls: readonly AppendCall[]): Promise<void> {
    const replicas = this.#options.replicas
    const ordered = this.#ordered
    if (ordered)
      return Promise.all(
        calls.map(args =>
          ordered.append(args[0], args[CALL], after => {
            args[AFTER] = after
            return this.#redis.roomAppend(...args).then(([, , stored]) => stored)
          }),
        ),
      ).then(() => {})
    if (!replicas) return Promise.all(calls.map(args => this.#redis.roomAppend(...args))).then(() => {})
    if (this.#waiting === 0) {
      const stored = this.#sendToReplicas(calls, replicas)
      if (stored) return stored
    }
    this.#waiting++
    const sent = this.#line.then(() => this.#sendWhenConnected(calls, replicas))
    const next = (): void => void this.#waiting--
    this.#line = sent.then(next, next)
    return sent.then(({ stored }) => stored)
  }

  /** Sends calls once every server they go to is connected; resolves (with their outcome) once sent. */
  async #sendWhenConnected(
    calls: readonly AppendCall[],
    replicas: NonNullable<RoomLogOptions['replicas']>,
  ): Promise<{ stored: Promise<void> }> {
    for (;;) {
      const stored = this.#sendToReplicas(calls, replicas)
      if (stored) return { stored }
      await sleep(RECONNECT_POLL_MS)
    }
  }

  /**
   * Sends calls through the replicated writer, one pipeline per server;
   * resolves once stored and confirmed. Sends nothing and returns undefined if
   * one of those servers is not connected.
   */
  #sendToReplicas(
    calls: readonly AppendCall[],
    { writer, acks, timeoutMs }: NonNullable<RoomLogOptions['replicas']>,
  ): Promise<void> | undefined {
    const pipelines = new Map<string, ScriptPipeline>()
    for (const args of calls) {
      const server = writer.serverOf(args[0]) // the log key: every key of a call is on its slot
      let pipeline = pipelines.get(server)
      if (!pipeline) {
        if (!writer.isConnected(server)) return undefined
        pipelines.set(server, (pipeline = writer.client.pipeline() as ScriptPipeline))
      }
      pipeline.roomAppend(...args)
    }
    const waits: Promise<void>[] = []
    for (const pipeline of pipelines.values())
      waits.push(
        pipeline
          .wait(acks, timeoutMs)
          .exec()
          .then(results => checkWait(results, acks)),
      )
    return Promise.all(waits).then(() => {})
  }

  /** The arguments of the script calls that append `messages` to `room`, each call numbered. */
  #appendCalls(room: string, messages: readonly string[], nonce: string): AppendCall[] {
    const { log, head, channel } = this.#keys.room(room)
    const track = this.#keys.track(room, nonce)
    const { maxLen, maxBytes, ttlSec, publishCommand } = this.#options
    const calls: AppendCall[] = []
    for (let start = 0; start < messages.length; start += APPEND_CHUNK) {
      const chunk = messages.slice(start, start + APPEND_CHUNK)
      calls.push([
        log,
        head,
        channel,
        track,
        maxLen,
        maxBytes,
        ttlSec,
        publishCommand,
        this.#writer,
        ++this.#calls,
        0,
        nonce,
        ...chunk,
      ])
    }
    return calls
  }

  /**
   * Up to `count` messages after `after`, oldest first; none older than the
   * ttl; no more than `maxBytes` of them (0: no bound) unless the first alone.
   */
  async read(
    room: string,
    after: Cursor,
    count: number,
    maxBytes = this.#options.readMaxBytes,
  ): Promise<LogEntry[]> {
    const flat = await this.#redis.roomRead(
      this.#keys.room(room).log,
      formatCursor(after),
      count,
      this.#options.ttlSec,
      maxBytes,
    )
    const entries: LogEntry[] = []
    for (let i = 0; i + 3 < flat.length; i += 4) {
      const { ms, seq } = parseCursor(flat[i]!)
      const entry = { room, ms, seq, message: flat[i + 1]!, track: flat[i + 2] || undefined }
      entries.push(flat[i + 3] === '1' ? { ...entry, isCallEnd: true } : entry)
    }
    return entries
  }

  /** Messages the room's log holds now. */
  length(room: string): Promise<number> {
    return this.#redis.xlen(this.#keys.room(room).log)
  }

  /** The cursor of the newest message ever appended (ORIGIN for an empty room). */
  async head(room: string): Promise<Cursor> {
    const [seq, ms] = await this.#redis.hmget(this.#keys.room(room).head, 's', 't')
    return seq && ms ? { ms: Number(ms), seq: Number(seq) } : ORIGIN
  }
}

/** The replies of one server's pipeline: every append stored, and the final WAIT saw enough replicas. */
function checkWait(results: [error: Error | null, result: unknown][] | null, acks: number): void {
  if (!results) throw new Error('pipeline discarded')
  for (const [err] of results) if (err) throw err
  const replicas = results[results.length - 1]?.[1]
  if (typeof replicas !== 'number' || replicas < acks)
    throw new Error(`WAIT: ${String(replicas)} of ${acks} replicas confirmed in time`)
}
