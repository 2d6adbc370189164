import { randomBytes } from 'node:crypto'
import type { Keys } from '../redis/keys.js'
import { isRedirect } from '../redis/redirects.js'
import { isNoScript, type ScriptRequest } from '../redis/script-request.js'
import { scriptRequests, type Commands } from '../redis/scripts.js'
import { groupBySlot } from '../redis/slot.js'
import { formatCursor, ORIGIN, parseCursor, type Cursor } from './cursor.js'
import { makeEntry, type Entry, type LogEntries } from './entry.js'
import { OrderedAppends, type AppendStatus } from './ordered-appends.js'
import type { GroupCommit } from './group-commit.js'

export interface RoomLogOptions {
  /** Messages a room keeps at most. */
  readonly maxLen: number
  /** Bytes of messages one read returns at most (but always one message); one script call's reads too, about. */
  readonly readMaxBytes: number
  /** Rooms one read script call reads at most (the reads asked for in one turn go together). */
  readonly readMaxRoomsPerCall: number
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
  /** A Redis Cluster: one call per slot; one Redis takes every room in one call (RedisClients.isCluster). */
  readonly isCluster: boolean
  /**
   * Replicas that must have a batch before it counts as stored: WAIT on each
   * server the batch went to, through the node's group commit (shared with
   * Membership). Absent: the master's reply is enough.
   */
  readonly groupCommit?: GroupCommit
}

/** One room's messages to append: plain ones, or one tracked message. */
interface Part {
  readonly room: string
  /** The room's log key: how calls and OrderedAppends name the room. */
  readonly log: string
  /** The room's other keys the script takes (made once: a call may be sent again, on a Cluster). */
  readonly head: string
  readonly channel: string
  readonly trackKey: string
  /** '' for plain messages; the nonce of the one tracked message. */
  readonly nonce: string
  readonly messages: string[]
  /** Settles once every call holding some of its messages has: one promise per part, none per call or piece. */
  readonly stored: Promise<void>
  readonly fail: (err: unknown) => void
  readonly succeed: () => void
  /** Calls holding some of its messages whose reply has not come yet (set when the turn is sent). */
  unanswered: number
}

/** The appends asked for in one turn of the event loop, sent together at its end. */
interface Turn {
  readonly parts: Part[]
  /** The last part of each room, which later plain messages of that room join if it is plain. */
  readonly lastPart: Map<string, Part>
}

/** One room_append-4n.lua call: pieces of parts of one slot, at most APPEND_CHUNK messages in all. */
interface AppendCall {
  readonly number: number
  readonly pieces: { readonly part: Part; readonly messages: readonly string[] }[]
}

/** A call's reply: -1 (refused: nothing stored), or 1 and `ms, first, status` per piece. */
type AppendReply = (number | string)[]

/** A read asked for in this turn, waiting for its script call. */
interface PendingRead {
  readonly room: string
  /** The room's keys, made once: its call groups by the log's slot, and a rest read again names them again. */
  readonly log: string
  readonly head: string
  readonly after: string
  readonly count: number
  readonly maxBytes: number
  readonly resolve: (entries: LogEntries) => void
  readonly reject: (err: unknown) => void
}

/** room_read-2n.lua: the reads of one turn, per slot, written as one request per call. */
const READ = scriptRequests('room_read-2n.lua')

/** room_append-4n.lua, each call written straight into its request: not through ioredis' script command, whose copies of the arguments were this path's largest allocation. */
const APPEND = scriptRequests('room_append-4n.lua')

/** Messages per script call: a huge batch must not stall Redis for long. */
const APPEND_CHUNK = 256

/**
 * The per-room log in Redis: a stream bounded by length, bytes and age, whose
 * ids carry a contiguous sequence number. Appends cost Redis the same whatever
 * the room's size (fan-out happens in the nodes), and those asked for in one
 * turn of the event loop (every producer batch read in it) go as one script
 * call per hash slot (on one Redis, one call) of at most APPEND_CHUNK messages:
 *
 *   appendAll / appendTracked ─▶ turn: parts by room, in order ─(end of turn)─▶
 *     parts by slot ─▶ room_append-4n.lua calls, numbered ─▶ each caller settles
 *     once the calls holding its messages have
 */
export class RoomLog {
  readonly #redis: Commands
  readonly #keys: Keys
  readonly #options: RoomLogOptions
  /**
   * Numbers every script call, so that a call sent again after a lost reply
   * is stored once (room_append-4n.lua). That needs a writer's calls to a room
   * to run in the order they were numbered, or a call retried after later
   * ones ran would be skipped though it never was: one Redis keeps the order;
   * on a Cluster, `#ordered` does.
   */
  readonly #writer: string
  #calls = 0
  /**
   * On a Cluster: each room's calls in order, sent again until stored. With
   * replicas, only a call that did not run is sent again (refused, or
   * redirected while its slot moves): the writer never sends one twice.
   */
  readonly #ordered: OrderedAppends | undefined
  /** The appends of this turn, not sent yet. */
  #turn: Turn | undefined
  /** The reads of this turn, not sent yet. */
  #reads: PendingRead[] | undefined

  constructor(redis: Commands, keys: Keys, options: RoomLogOptions) {
    this.#redis = redis
    this.#keys = keys
    this.#options = options
    const isOrdered = !options.resendsInOrder
    this.#ordered = isOrdered
      ? new OrderedAppends(options.groupCommit ? isRedirect : options.isPassing)
      : undefined
    this.#writer = options.resendsInOrder || isOrdered ? randomBytes(9).toString('base64url') : ''
  }

  /** Script calls that appended messages so far: one per slot per turn, or per APPEND_CHUNK messages. */
  get appendCalls(): number {
    return this.#calls
  }

  /**
   * Appends a producer batch, grouped by room; per room, in order, after the
   * appends asked for before. Rejects if an append of the batch fails or if
   * fewer replicas than asked confirmed in time: the messages may then be
   * stored or not, and a retry may store them twice.
   *
   * A room's plain messages of consecutive batches in one turn join one part:
   * one announcement, whose last message the log marks (e), so a log read
   * cuts chunks where the live announcement did (markChunkEnds).
   */
  appendAll(byRoom: ReadonlyMap<string, readonly string[]>): Promise<void> {
    const turn = this.#currentTurn()
    const parts: Part[] = []
    for (const [room, messages] of byRoom) {
      const last = turn.lastPart.get(room)
      if (last?.nonce !== '') parts.push(this.#addPart(turn, room, '', [...messages]))
      else {
        // One at a time: a publish can hold more messages than a call's arguments may spread.
        for (const message of messages) last.messages.push(message)
        parts.push(last)
      }
    }
    return parts.length === 1 ? parts[0]!.stored : Promise.all(parts.map(part => part.stored)).then(() => {})
  }

  /**
   * Appends one tracked message: its log entry and its announcement carry
   * `nonce`, and its track hash is made with it (room_append-4n.lua).
   */
  appendTracked(room: string, message: string, nonce: string): Promise<void> {
    const turn = this.#currentTurn()
    return this.#addPart(turn, room, nonce, [message]).stored
  }

  /** The appends of this turn; the first one asked for schedules the sending at its end. */
  #currentTurn(): Turn {
    if (this.#turn) return this.#turn
    const turn: Turn = { parts: [], lastPart: new Map() }
    // At the end of this turn: every publish read from the same socket chunk goes in the same calls.
    queueMicrotask(() => {
      try {
        this.#send()
      } catch (err) {
        for (const part of turn.parts) part.fail(err) // every caller of the turn hears of it; nothing escapes the microtask
      }
    })
    return (this.#turn = turn)
  }

  #addPart(turn: Turn, room: string, nonce: string, messages: string[]): Part {
    let succeed!: () => void
    let fail!: (err: unknown) => void
    const stored = new Promise<void>((resolve, reject) => {
      succeed = resolve
      fail = reject
    })
    const { log, head, channel } = this.#keys.room(room)
    const part: Part = {
      room,
      log,
      head,
      channel,
      trackKey: this.#keys.track(room, nonce),
      nonce,
      messages,
      stored,
      succeed,
      fail,
      unanswered: 0,
    }
    turn.parts.push(part)
    turn.lastPart.set(room, part)
    return part
  }

  /** Issues the turn's calls, slot by slot; each part settles once the calls holding its messages have answered. */
  #send(): void {
    const turn = this.#turn
    this.#turn = undefined
    if (!turn) return
    const calls: AppendCall[] = []
    for (const parts of groupBySlot(turn.parts, part => part.log, this.#options.isCluster))
      for (const call of this.#callsOf(parts)) calls.push(call)
    for (const call of calls) for (const { part } of call.pieces) part.unanswered++
    for (const part of turn.parts) if (part.unanswered === 0) part.succeed() // no messages: nothing to store
    const replies = this.#store(calls)
    calls.forEach((call, i) =>
      replies[i]!.then(
        reply =>
          call.pieces.forEach(({ part }, index) => {
            const refusal = refusalOf(reply, index)
            if (refusal) part.fail(refusal)
            else if (--part.unanswered === 0) part.succeed()
          }),
        (err: unknown) => call.pieces.forEach(({ part }) => part.fail(err)),
      ),
    )
  }

  /**
   * The calls that append `parts` (all on one slot), in order, each numbered:
   * at most APPEND_CHUNK messages a call, a large part split over several.
   */
  #callsOf(parts: readonly Part[]): AppendCall[] {
    const calls: AppendCall[] = []
    let call: AppendCall | undefined
    let count = 0
    for (const part of parts) {
      for (let start = 0; start < part.messages.length;) {
        if (!call || count === APPEND_CHUNK) {
          calls.push((call = { number: ++this.#calls, pieces: [] }))
          count = 0
        }
        const messages = part.messages.slice(start, start + APPEND_CHUNK - count)
        call.pieces.push({ part, messages })
        count += messages.length
        start += messages.length
      }
    }
    return calls
  }

  /** The script call for `call`, each piece following `afterIn(its room)` (0: nothing). */
  #requestOf(call: AppendCall, afterIn: (room: string) => number): ScriptRequest {
    let args = 6
    for (const { messages } of call.pieces) args += 3 + messages.length
    const request = APPEND.start(4 * call.pieces.length, args)
    for (const { part } of call.pieces)
      request.key(part.log).key(part.head).key(part.channel).key(part.trackKey)
    const { maxLen, maxBytes, ttlSec, publishCommand } = this.#options
    request.arg(maxLen).arg(maxBytes).arg(ttlSec).arg(publishCommand).arg(this.#writer).arg(call.number)
    for (const { part, messages } of call.pieces) {
      request.arg(afterIn(part.log)).arg(part.nonce).arg(messages.length)
      for (const message of messages) request.arg(message)
    }
    return request.end()
  }

  /**
   * Sends script calls: at once (on a Cluster through `#ordered`, which sends
   * them again until stored), or, when replicas must confirm, through the
   * group commit (per server one pipeline at a time, then one WAIT; on a Cluster still
   * through `#ordered`: a call redirected while its slot moves did not run,
   * and goes again, after the calls before it, to where the slot is). The
   * calls are issued in order, so that a writer's calls run in the order
   * they were numbered. Returns the reply of each call.
   */
  #store(calls: readonly AppendCall[]): Promise<AppendReply>[] {
    const ordered = this.#ordered
    if (!ordered) return calls.map(call => this.#append(call, () => 0))
    return calls.map(call => {
      let reply: AppendReply = []
      const rooms = call.pieces.map(({ part }) => part.log)
      const send = (afterIn: (room: string) => number): Promise<AppendStatus> =>
        this.#append(call, afterIn).then(answer => {
          reply = answer
          return answer[0] === -1 ? -1 : 1
        })
      return ordered.append(rooms, call.number, send).then(() => reply)
    })
  }

  /**
   * One call, each room following `afterIn(room)`: a script call, or through
   * the group commit, made (and numbered) as it is written. There it rejects
   * with its own error first (a redirect: it did not run; OOM: nothing
   * stored), then with its pipeline's shortfall (TooFewReplicas).
   */
  async #append(call: AppendCall, afterIn: (room: string) => number): Promise<AppendReply> {
    const groupCommit = this.#options.groupCommit
    if (!groupCommit) return (await APPEND.send(this.#redis, this.#requestOf(call, afterIn))) as AppendReply
    const { err, reply, short } = await groupCommit.write(call.pieces[0]!.part.log, () =>
      APPEND.command(this.#requestOf(call, afterIn)),
    )
    if (err) throw err
    if (short) throw short
    return reply as AppendReply
  }

  /**
   * Up to `count` messages after `after`, oldest first; none older than the
   * ttl; no more than `maxBytes` of them (0: no bound) unless the first alone.
   *
   * The reads asked for in one turn of the event loop go together, one
   * room_read-2n.lua call per slot (on one Redis, one call) of at most
   * readMaxRoomsPerCall rooms: a consumer that connects in many rooms new
   * to the node reads each of them, and one call (a round trip, a socket
   * write) each cost the node more than the reads cost Redis
   * (docs/performance.md, section 1, item 24).
   */
  read(
    room: string,
    after: Cursor,
    count: number,
    maxBytes = this.#options.readMaxBytes,
  ): Promise<LogEntries> {
    return new Promise((resolve, reject) => {
      let reads = this.#reads
      if (!reads) {
        reads = this.#reads = []
        queueMicrotask(() => this.#sendReads())
      }
      const { log, head } = this.#keys.room(room)
      reads.push({ room, log, head, after: formatCursor(after), count, maxBytes, resolve, reject })
    })
  }

  /** Issues the turn's reads, per slot, in calls of at most readMaxRoomsPerCall rooms. */
  #sendReads(): void {
    const reads = this.#reads
    this.#reads = undefined
    if (!reads) return
    const perCall = this.#options.readMaxRoomsPerCall
    for (const group of groupBySlot(reads, read => read.log, this.#options.isCluster))
      for (let start = 0; start < group.length; start += perCall)
        this.#readCall(group.slice(start, start + perCall))
  }

  /**
   * One room_read-2n.lua call; the rooms it left unread (its bytes reached
   * readMaxBytes) go in the next. A call answered NOSCRIPT (the script cache
   * emptied) is sent again at once, as EVAL: a read may run in any order.
   * Every read settles: nothing escapes.
   */
  #readCall(reads: readonly PendingRead[], isResent = false): void {
    const failAll = (err: unknown): void => {
      for (const read of reads) read.reject(err) // no-op for those settled already
    }
    try {
      const request = READ.start(2 * reads.length, 2 + 3 * reads.length)
      for (const { log, head } of reads) request.key(log).key(head)
      request.arg(this.#options.ttlSec).arg(this.#options.readMaxBytes)
      for (const { after, count, maxBytes } of reads) request.arg(after).arg(count).arg(maxBytes)
      READ.send(this.#redis, request.end())
        .then(reply => {
          const rooms = reply as (number | string)[][]
          if (rooms.length === 0) throw new Error('room read returned no room')
          for (const [i, flat] of rooms.entries()) {
            const read = reads[i]!
            if (flat[0] === -1) read.reject(new Error(`room read failed: ${String(flat[1])}`))
            else read.resolve(entriesOf(read.room, flat))
          }
          if (rooms.length < reads.length) this.#readCall(reads.slice(rooms.length))
        })
        .catch((err: unknown) => {
          if (isNoScript(err) && !isResent) this.#readCall(reads, true)
          else failAll(err)
        })
    } catch (err) {
      failAll(err) // nothing escapes the turn's microtask
    }
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

/** A room's reply of room_read-2n.lua as entries, as the fan-out makes them: outboxes queue them as they are. */
function entriesOf(room: string, flat: readonly (number | string)[]): LogEntries {
  const since = flat[0] as number
  const entries: Entry[] & { isCut?: true } = []
  if (flat[1] === 1) entries.isCut = true
  for (let i = 2; i + 3 < flat.length; i += 4) {
    const { ms, seq } = parseCursor(flat[i] as string)
    entries.push(
      makeEntry(
        room,
        ms,
        seq,
        flat[i + 1] as string,
        (flat[i + 2] as string) || undefined,
        flat[i + 3] === '1',
        since,
      ),
    )
  }
  return entries
}

/** Why piece `index` of a call's reply is not stored: the call was refused, or the script refused that room. */
function refusalOf(reply: AppendReply, index: number): Error | undefined {
  if (reply[0] === -1) return new Error('room append refused: a call before it is not stored')
  if (reply[3 + 3 * index] === -2) return new Error(`room append refused: ${String(reply[2 + 3 * index])}`)
  return undefined
}
