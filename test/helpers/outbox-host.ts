/**
 * An outbox's node in memory, for the unit tests of Outbox and Hub: room logs
 * in arrays, reads answered at once or when the test says, sinks that record
 * what they were sent. No Redis: the merge logic is tested on its own here,
 * and against Redis in test/broker/node.test.ts.
 */
import type { Batch } from '../../src/broker/batch.js'
import { makeEntry, type Entry } from '../../src/broker/entry.js'
import { isAfter, ORIGIN, type Cursor } from '../../src/broker/cursor.js'
import { Outbox, type ConsumerSink, type OutboxHost } from '../../src/broker/outbox.js'
import { silentLogger, type Logger } from '../../src/log.js'

/** A session: records the batches it is sent; acks each at once if `autoAck`. */
export class FakeSink implements ConsumerSink {
  readonly batches: Batch[] = []
  closed: string | undefined
  outbox: Outbox<FakeSink> | undefined
  /** The most messages, and bytes of them, the outbox had queued when a batch was sent. */
  maxQueued = 0
  maxQueuedBytes = 0
  /** Gap notices, each with the number of batches sent before it. */
  readonly gaps: { room: string; missed: number | null; before: number }[] = []

  constructor(public autoAck = false) {}

  send(batch: Batch): void {
    this.batches.push(batch)
    this.maxQueued = Math.max(this.maxQueued, this.outbox?.queued ?? 0)
    this.maxQueuedBytes = Math.max(this.maxQueuedBytes, this.outbox?.queuedBytes ?? 0)
    if (this.autoAck) queueMicrotask(() => this.outbox?.ack(batch.id))
  }

  gap(room: string, missed: number | null): void {
    this.gaps.push({ room, missed, before: this.batches.length })
  }

  close(reason: string): void {
    this.closed = reason
  }

  /** Every message received, a batch sent again under the same id counted once (as clients do). */
  get messages(): string[] {
    return this.batches.flatMap((batch, i) =>
      this.batches[i - 1]?.id === batch.id ? [] : batch.entries.map(e => e.message),
    )
  }

  /** Acks the last batch received. */
  ack(): boolean {
    const last = this.batches.at(-1)
    return !!last && !!this.outbox?.ack(last.id)
  }
}

export interface PendingRead {
  readonly room: string
  readonly after: Cursor
  readonly count: number
  /** Answers with the log as it was when the read was issued. */
  answer(): void
  /** Answers with the log as it is now (messages appended since included). */
  answerNow(): void
  fail(err: Error): void
}

export class FakeHost implements OutboxHost<FakeSink> {
  batchMaxMessages = 3
  batchMaxBytes = 1 << 20
  maxQueue = 10
  maxQueueBytes = 1 << 20
  log: Logger = silentLogger
  readonly logs = new Map<string, Entry[]>()
  /** Reads not answered yet (when `autoAnswer` is off), oldest first. */
  readonly pending: PendingRead[] = []
  /** Reads issued, answered or not. */
  reads = 0
  /** Answer reads at once with the log as it is. */
  autoAnswer = true
  /** Fail this many reads first. */
  failReads = 0
  acknowledgedMessages = 0
  readonly readFailures: string[] = []
  readonly holesFound: { room: string; missed: number | null }[] = []
  #ids = 0
  /** Each room's last seq. */
  readonly #heads = new Map<string, number>()

  constructor(
    limits: Partial<Pick<FakeHost, 'batchMaxMessages' | 'batchMaxBytes' | 'maxQueue' | 'maxQueueBytes'>> = {},
  ) {
    Object.assign(this, limits)
  }

  /** An outbox of this host with a sink of its own. */
  outbox(consumerId = 'c1', sink = new FakeSink()): Outbox<FakeSink> {
    const outbox = new Outbox(this, consumerId, 'u1')
    outbox.sink = sink
    sink.outbox = outbox
    return outbox
  }

  /** Appends messages to a room's log, numbered on; returns their entries as an announcement carries them. */
  append(room: string, ...messages: string[]): Entry[] {
    const log = this.logs.get(room) ?? []
    this.logs.set(room, log)
    const head = this.#heads.get(room) ?? 0
    this.#heads.set(room, head + messages.length)
    const entries = messages.map((message, i) => makeEntry(room, 1, head + i + 1, message, undefined))
    log.push(...entries)
    entries.at(-1)!.isChunkEnd = true
    return entries
  }

  /** Trims a room's log to its last `keep` messages, as the length bound of the real one does. */
  trim(room: string, keep: number): void {
    const log = this.logs.get(room) ?? []
    log.splice(0, Math.max(0, log.length - keep))
  }

  read(room: string, after: Cursor, count: number): Promise<readonly Entry[]> {
    this.reads++
    const from = (log: readonly Entry[]): Entry[] => log.filter(e => isAfter(e, after)).slice(0, count)
    const issued = [...(this.logs.get(room) ?? [])]
    return new Promise((resolve, reject) => {
      if (this.failReads > 0) {
        this.failReads--
        reject(new Error('read failed'))
        return
      }
      const read: PendingRead = {
        room,
        after,
        count,
        answer: () => resolve(from(issued)),
        answerNow: () => resolve(from(this.logs.get(room) ?? [])),
        fail: reject,
      }
      if (this.autoAnswer) read.answerNow()
      else this.pending.push(read)
    })
  }

  newBatchId(): string {
    return `b${++this.#ids}`
  }

  send(outbox: Outbox<FakeSink>, batch: Batch): void {
    outbox.sink?.send(batch)
  }

  acknowledged(_outbox: Outbox<FakeSink>, batch: Batch): void {
    this.acknowledgedMessages += batch.entries.length
  }

  readFailed(_outbox: Outbox<FakeSink>, room: string): void {
    this.readFailures.push(room)
  }

  holeFound(_outbox: Outbox<FakeSink>, room: string, missed: number | null): void {
    this.holesFound.push({ room, missed })
  }
}

/** Lets promise callbacks and queued microtasks run (reads answered, auto-acks). */
export const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

/** The messages of each batch sent. */
export const batchMessages = (sink: FakeSink): string[][] =>
  sink.batches.map(batch => batch.entries.map(e => e.message))

/** An outbox in rooms 'r' (its log: a, b) and 's' (x), both read from their start: its first batch (a, b) in flight. */
export async function twoRoomOutbox(): Promise<{ host: FakeHost; outbox: Outbox<FakeSink> }> {
  const host = new FakeHost()
  host.append('r', 'a', 'b')
  host.append('s', 'x')
  const outbox = host.outbox()
  for (const room of ['r', 's']) {
    outbox.addRoom(room, ORIGIN)
    outbox.resync(room)
  }
  await settle()
  return { host, outbox }
}
