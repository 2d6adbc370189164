/**
 * The delivery formats of the consumer gateway (docs/consumer-protocol.md).
 * A session picks one with `codec=` on its handshake; without it, it gets
 * what the original broker sent:
 *
 *   legacy   text    {"jsonrpc":"2.0","id":"<batch>","method":"publish","params":["<message>", ...]}
 *   json     text    {"jsonrpc":"2.0","id":"<batch>","method":"deliver","params":[<run>, ...]}
 *   msgpack  binary  the `json` object, msgpack-encoded
 *
 *   run = [room, storedAtMs, seq, [message, ...]]: consecutive messages of one
 *   room stored in the same ms, numbered seq, seq + 1, ...
 *
 * A batch's frame in each format is made once, by the first session that
 * sends it in that format, and shared by every session in step. Everything
 * else a codec session is sent (gap and reconnect notices, echo replies) is
 * a JSON-RPC object in its codec too; a msgpack session sends binary acks.
 */
import { Packr } from 'msgpackr'
import type { Batch } from '../broker/batch.js'
import type { Entry } from '../broker/entry.js'
import { encodeMessage, type EncodedMessage } from './engineio/server.js'

export type DeliveryFormat = 'legacy' | 'json' | 'msgpack'

/** Standard msgpack maps (no records extension), 64-bit integers read as numbers. */
const packr = new Packr({ useRecords: false, int64AsType: 'number' })
/**
 * What reads a client's msgpack. msgpackr's structured-clone references
 * (extensions 0x69 and 0x70) are on unless turned off, and let a few hundred
 * bytes decode to a graph that shares its nodes, whose walk (the depth
 * check, the echo) is exponential: README, The SDK wire format.
 */
const clientPackr = new Packr({ useRecords: false, int64AsType: 'number', structuredClone: false })

/** The format a handshake's `codec` asks for; undefined for a value we do not know. */
export function formatOf(codec: string | null): DeliveryFormat | undefined {
  if (codec === null) return 'legacy'
  return codec === 'json' || codec === 'msgpack' ? codec : undefined
}

/** The legacy frame, as snapper-consumer and engine.io-client users read it. */
export function legacyFrame(batch: Batch): EncodedMessage {
  return (batch.encoded ??= encodeMessage(batch.frame)) as EncodedMessage
}

/** The json frame: the batch's runs, messages as their cached JSON. */
export function jsonFrame(batch: Batch): EncodedMessage {
  return (batch.jsonFrame ??= encodeMessage(jsonText(batch))) as EncodedMessage
}

/** The msgpack frame: the json frame's object as msgpack. */
export function msgpackFrame(batch: Batch): Buffer {
  return (batch.msgpackFrame ??= packr.pack({
    jsonrpc: '2.0',
    id: batch.id,
    method: 'deliver',
    params: runsOf(batch.entries),
  })) as Buffer
}

function jsonText(batch: Batch): string {
  const { entries } = batch
  const runs: string[] = []
  forEachRun(entries, (start, end) => {
    const first = entries[start]!
    const messages = new Array<string>(end - start)
    for (let i = start; i < end; i++) {
      const entry = entries[i]!
      messages[i - start] = entry.json ??= JSON.stringify(entry.message)
    }
    runs.push(`[${JSON.stringify(first.room)},${first.ms},${first.seq},[${messages.join(',')}]]`)
  })
  return `{"jsonrpc":"2.0","id":${JSON.stringify(batch.id)},"method":"deliver","params":[${runs.join(',')}]}`
}

type Run = [room: string, storedAtMs: number, seq: number, messages: string[]]

function runsOf(entries: readonly Entry[]): Run[] {
  const runs: Run[] = []
  forEachRun(entries, (start, end) => {
    const first = entries[start]!
    const messages = new Array<string>(end - start)
    for (let i = start; i < end; i++) messages[i - start] = entries[i]!.message
    runs.push([first.room, first.ms, first.seq, messages])
  })
  return runs
}

/** Calls `visit(start, end)` for each run of entries [start, end). */
function forEachRun(entries: readonly Entry[], visit: (start: number, end: number) => void): void {
  let start = 0
  for (let i = 1; i <= entries.length; i++) {
    const entry = entries[i]
    const previous = entries[i - 1]!
    const continues =
      entry !== undefined &&
      entry.room === previous.room &&
      entry.ms === previous.ms &&
      entry.seq === previous.seq + 1
    if (continues) continue
    visit(start, i)
    start = i
  }
}

/** A JSON-RPC object for a session: text (legacy, json) or msgpack bytes. */
export function encodeObject(format: DeliveryFormat, value: object): string | Buffer {
  return format === 'msgpack' ? packr.pack(value) : JSON.stringify(value)
}

/**
 * What a consumer sent, parsed: JSON text, or msgpack from a msgpack session (others' binary is JSON too).
 * Throws if unreadable, and for msgpack that is not JSON's data (docs/consumer-protocol.md §12.1).
 */
export function decodeFromClient(format: DeliveryFormat, data: string | Buffer): unknown {
  if (typeof data === 'string') return JSON.parse(data)
  if (format !== 'msgpack') return JSON.parse(data.toString('utf8'))
  const value: unknown = clientPackr.unpack(data)
  if (!isPlainData(value, data.length)) throw new Error('msgpack extension types are not accepted')
  return value
}

/**
 * Whether a decoded msgpack value holds only what msgpack's own types make:
 * null, booleans, numbers, strings, binary, arrays and plain objects. The
 * extension types decode to Sets (which the depth check does not see into, and
 * whose echo overflows the stack 1,000 deep), BigInts, Errors, RegExps, Dates,
 * undefined. Iterative (a value may nest as deep as the decoder went), and at
 * most one value per byte of the frame: more would mean shared values.
 */
function isPlainData(root: unknown, maxValues: number): boolean {
  const pending: unknown[] = [root]
  for (let visited = 0; pending.length > 0; visited++) {
    if (visited > maxValues) return false
    const value = pending.pop()
    if (
      value === null ||
      typeof value === 'string' ||
      typeof value === 'number' ||
      typeof value === 'boolean'
    )
      continue
    if (value instanceof Uint8Array) continue
    if (Array.isArray(value)) {
      for (const member of value as unknown[]) pending.push(member)
      continue
    }
    if (typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return false
    for (const member of Object.values(value)) pending.push(member)
  }
  return true
}
