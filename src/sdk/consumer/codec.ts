/**
 * The delivery formats a consumer asks for with `codec=` on its handshake
 * (docs/consumer-protocol.md): JSON-RPC 2.0 objects, as JSON text messages
 * (`json`) or as msgpack binary messages (`msgpack`). The broker never sends
 * these to a client that did not ask.
 */
import { pack, unpack } from 'msgpackr'

export type Codec = 'json' | 'msgpack'

export const CODECS: readonly Codec[] = ['json', 'msgpack']

/**
 * One run of a delivery: consecutive messages of one room, stored in the
 * same millisecond, the first with sequence number `seq`, the next `seq + 1`...
 */
export type Run = readonly [room: string, storedAtMs: number, seq: number, messages: readonly string[]]

/** A frame of either codec as a value; text is always JSON (a msgpack session may get text too). */
export function decodeFrame(data: string | Uint8Array): unknown {
  return typeof data === 'string' ? JSON.parse(data) : unpack(data)
}

/** The acknowledgement of a delivery, in the session's codec. */
export function encodeAck(codec: Codec, id: string | number): string | Uint8Array {
  return codec === 'json'
    ? `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":"OK"}`
    : pack({ jsonrpc: '2.0', id, result: 'OK' })
}

/** A run as the broker sends it, or undefined if it is not one (msgpack can carry NaN, and values of every kind as messages). */
export function asRun(value: unknown): Run | undefined {
  if (!Array.isArray(value) || value.length !== 4) return undefined
  const [room, storedAtMs, seq, messages] = value as unknown[]
  return typeof room === 'string' &&
    Number.isFinite(storedAtMs) &&
    Number.isFinite(seq) &&
    Array.isArray(messages) &&
    messages.every(message => typeof message === 'string')
    ? (value as unknown as Run)
    : undefined
}
