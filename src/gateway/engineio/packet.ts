import { SnapperError } from '../../errors.js'

/**
 * Engine.IO packet and payload codecs for protocol revisions 3 and 4
 * (docs/consumer-protocol.md §2, §4.1–4.3). Pure: no I/O, no state. Decoders never
 * throw on client input; they return a SnapperError('PARSE_ERROR') instead,
 * which the session turns into the close reason "parse error".
 */

/** Protocol revision, from the `EIO` query parameter. */
export type Revision = 3 | 4

export const PACKET_TYPES = ['open', 'close', 'ping', 'pong', 'message', 'upgrade', 'noop'] as const
export type PacketType = (typeof PACKET_TYPES)[number]

/** A decoded packet. `data` is '' when the packet has none; a Buffer only for binary data. */
export interface Packet {
  readonly type: PacketType
  readonly data: string | Buffer
}

/**
 * A packet ready to go out: a text packet exactly as on the wire (`'4hello'`,
 * `'2'`, `'6'`), or the data of a binary message. Only messages carry binary
 * data, so a Buffer needs no type.
 */
export type OutPacket = string | Buffer

/** Text packets the server sends, spelled once. */
export const OPEN = '0'
export const CLOSE = '1'
export const PING = '2'
export const PONG = '3'
export const MESSAGE = '4'
export const NOOP = '6'
export const PROBE = 'probe'

/** v4 payload separator (ASCII record separator). */
const SEPARATOR = '\x1e'
/** v3 binary payload: end of the length digits. */
const LENGTH_END = 0xff
/** The longest v3 length we read, in digits: 10 digits is far past any body we accept. */
const MAX_LENGTH_DIGITS = 10

/**
 * One message made once and sent to many sessions: the text packet, and its
 * UTF-8 bytes made on the second send, so that every further websocket sends
 * the same Buffer. Most messages go to one session only (a user's room, a
 * catch-up read): those never get a Buffer of their own.
 */
export class EncodedMessage {
  /** The text packet: `'4' + text`. */
  readonly packet: string
  #bytes: Buffer | undefined
  #isSent = false

  constructor(text: string) {
    this.packet = MESSAGE + text
  }

  /** The packet's UTF-8 bytes, encoded once. */
  get bytes(): Buffer {
    return (this.#bytes ??= Buffer.from(this.packet))
  }

  /** The packet's size in UTF-8 bytes (from the bytes if they exist; no Buffer made for it). */
  get byteLength(): number {
    return this.#bytes?.length ?? Buffer.byteLength(this.packet)
  }

  /**
   * What a websocket sends: the text the first time (uWS writes a string's
   * UTF-8 straight into its send buffer), the shared bytes from then on.
   */
  wire(): string | Buffer {
    if (this.#bytes !== undefined) return this.#bytes
    if (!this.#isSent) {
      this.#isSent = true
      return this.packet
    }
    return this.bytes
  }
}

/** Encodes `text` once as a message packet for `Session.sendEncoded`. */
export function encodeMessage(text: string): EncodedMessage {
  return new EncodedMessage(text)
}

function parseError(reason: string): SnapperError {
  return new SnapperError('PARSE_ERROR', `parse error: ${reason}`)
}

function typeOfDigit(char: string): PacketType | undefined {
  const code = char.charCodeAt(0) - 0x30
  return code >= 0 && code < PACKET_TYPES.length ? PACKET_TYPES[code] : undefined
}

/**
 * Decodes one text packet. `b` starts base64 binary data: followed by the type
 * digit in v3 (`b4AQID`), always a message in v4 (`bAQID`).
 */
export function decodeTextPacket(text: string, revision: Revision): Packet | SnapperError {
  const first = text.charAt(0)
  if (first === 'b') {
    if (revision === 4) return { type: 'message', data: Buffer.from(text.slice(1), 'base64') }
    const type = typeOfDigit(text.charAt(1))
    if (type === undefined) return parseError('bad binary packet type')
    return { type, data: Buffer.from(text.slice(2), 'base64') }
  }
  const type = typeOfDigit(first)
  if (type === undefined) return parseError('bad packet type')
  return { type, data: text.slice(1) }
}

/**
 * Decodes one binary packet: a websocket binary frame, or a binary item of a
 * v3 binary payload. v3 puts the type in the first byte; v4 sends only
 * messages, raw. `bytes` must be the caller's own copy.
 */
export function decodeBinaryPacket(bytes: Buffer, revision: Revision): Packet | SnapperError {
  if (revision === 4) return { type: 'message', data: bytes }
  const type = bytes.length > 0 ? PACKET_TYPES[bytes[0]!] : undefined
  if (type === undefined) return parseError('bad binary packet type')
  return { type, data: bytes.subarray(1) }
}

/**
 * A binary message as a websocket frame: raw in v4, after the type byte in
 * v3; as base64 text for clients that asked for `b64`.
 */
export function encodeBinaryFrame(data: Buffer, revision: Revision, isB64: boolean): string | Buffer {
  if (isB64) return base64Packet(data, revision)
  return revision === 4 ? data : Buffer.concat([Buffer.of(4), data])
}

function base64Packet(data: Buffer, revision: Revision): string {
  return (revision === 3 ? 'b4' : 'b') + data.toString('base64')
}

/**
 * A polling payload as text: `<len>:<packet>` items with lengths in UTF-16
 * code units (v3), or packets joined by `\x1e` (v4). Binary data goes base64.
 */
export function encodeTextPayload(packets: readonly OutPacket[], revision: Revision): string {
  if (revision === 4) {
    let payload = ''
    for (const packet of packets) {
      if (payload !== '') payload += SEPARATOR
      payload += typeof packet === 'string' ? packet : base64Packet(packet, 4)
    }
    return payload
  }
  let payload = ''
  for (const packet of packets) {
    const text = typeof packet === 'string' ? packet : base64Packet(packet, 3)
    payload += `${text.length}:${text}` // String length: UTF-16 units (docs/consumer-protocol.md §4.1)
  }
  return payload
}

/**
 * A v3 polling payload in the binary form (`application/octet-stream`):
 * `<0 string | 1 binary><length digits as bytes 0–9><0xFF><bytes>` per packet,
 * lengths in bytes. Used only when a batch holds binary data and the client
 * did not ask for `b64`.
 */
export function encodeBinaryPayload(packets: readonly OutPacket[]): Buffer {
  const parts: Buffer[] = []
  for (const packet of packets) {
    const isText = typeof packet === 'string'
    const body = isText ? Buffer.from(packet) : packet
    const length = isText ? body.length : body.length + 1 // + the type byte
    const digits = String(length)
    const header = Buffer.alloc(digits.length + (isText ? 2 : 3))
    header[0] = isText ? 0 : 1
    for (let i = 0; i < digits.length; i++) header[i + 1] = digits.charCodeAt(i) - 0x30
    header[digits.length + 1] = LENGTH_END
    if (!isText) header[digits.length + 2] = 4 // message
    parts.push(header, body)
  }
  return Buffer.concat(parts)
}

/** Decodes a text polling payload (docs/consumer-protocol.md §4.1 for v3, §4.3 for v4). An empty payload is an error. */
export function decodeTextPayload(payload: string, revision: Revision): Packet[] | SnapperError {
  if (payload === '') return parseError('empty payload')
  return revision === 4 ? decodeV4Payload(payload) : decodeV3Payload(payload)
}

function decodeV4Payload(payload: string): Packet[] | SnapperError {
  const packets: Packet[] = []
  for (const text of payload.split(SEPARATOR)) {
    const packet = decodeTextPacket(text, 4)
    if (packet instanceof SnapperError) return packet
    packets.push(packet)
  }
  return packets
}

function decodeV3Payload(payload: string): Packet[] | SnapperError {
  const packets: Packet[] = []
  let at = 0
  while (at < payload.length) {
    const colon = payload.indexOf(':', at)
    if (colon === -1) return parseError('missing length separator')
    const digits = payload.slice(at, colon)
    if (digits.length === 0 || digits.length > MAX_LENGTH_DIGITS || !/^[0-9]+$/.test(digits))
      return parseError('bad length')
    const length = Number(digits)
    const end = colon + 1 + length
    if (end > payload.length) return parseError('length past the end')
    // engine.io-parser 2.x skips empty items (`0:`) rather than refusing them.
    if (length > 0) {
      const packet = decodeTextPacket(payload.slice(colon + 1, end), 3)
      if (packet instanceof SnapperError) return packet
      packets.push(packet)
    }
    at = end
  }
  return packets
}

/** Decodes a v3 binary payload (docs/consumer-protocol.md §4.2). `body` must be the caller's own copy. */
export function decodeBinaryPayload(body: Buffer): Packet[] | SnapperError {
  if (body.length === 0) return parseError('empty payload')
  const packets: Packet[] = []
  let at = 0
  while (at < body.length) {
    const kind = body[at]
    if (kind !== 0 && kind !== 1) return parseError('bad item kind')
    let length = 0
    let digits = 0
    for (at++; body[at] !== LENGTH_END; at++, digits++) {
      const digit = body[at]
      if (digit === undefined || digit > 9 || digits === MAX_LENGTH_DIGITS) return parseError('bad length')
      length = length * 10 + digit
    }
    at++ // past 0xFF
    if (digits === 0 || at + length > body.length) return parseError('bad length')
    const bytes = body.subarray(at, at + length)
    const packet = kind === 0 ? decodeTextPacket(bytes.toString(), 3) : decodeBinaryPacket(bytes, 3)
    if (packet instanceof SnapperError) return packet
    packets.push(packet)
    at += length
  }
  return packets
}
