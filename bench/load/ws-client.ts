/**
 * A lean RFC 6455 client on a raw TCP socket, for thousands of connections
 * per thread: no EventEmitter per socket, no per-frame promise, one Buffer
 * per outgoing frame, masked with a random key as clients must; fragmented
 * and control frames from the server are handled. permessage-deflate is
 * offered only when asked (`deflate`), without context takeover either way,
 * so each compressed message inflates on its own; what we send is never
 * compressed.
 *
 *   connecting ──101 + right accept──▶ open ──close frame / FIN / error──▶ closed (onClose once)
 */
import { createHash, randomFillSync } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { constants, inflateRawSync } from 'node:zlib'

export interface WsTarget {
  readonly host: string
  readonly port: number
  /** Path and query, e.g. `/websocket/?EIO=4&transport=websocket&token=…`. */
  readonly path: string
  /** Source address (127.0.0.2, …) when one address runs out of ephemeral ports. */
  readonly localAddress?: string
  /** Offer permessage-deflate. */
  readonly deflate?: boolean
}

/** What a connection reports; one object per connection, no closures per frame. */
export interface WsHandler {
  wsOpen(ws: LeanWebSocket): void
  wsText(ws: LeanWebSocket, text: string): void
  wsBinary(ws: LeanWebSocket, bytes: Buffer): void
  wsClose(ws: LeanWebSocket, reason: string): void
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const OP_CONTINUATION = 0x0
const OP_TEXT = 0x1
const OP_BINARY = 0x2
const OP_CLOSE = 0x8
const OP_PING = 0x9
const OP_PONG = 0xa
const HEADER_END = Buffer.from('\r\n\r\n')
/** RFC 7692 §7.2.2: the tail a sender strips from each compressed message, appended again to inflate it. */
const DEFLATE_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff])
const DEFLATE_OFFER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'

/**
 * Mask keys and handshake keys come from a pool refilled in bulk: one crypto
 * call per 16,384 masks, not one per frame or connection (a small
 * randomBytes() in a worker thread cost ~50 µs, as much as the connect).
 */
const randomPool = Buffer.alloc(64 * 1024)
let randomAt = randomPool.length

function nextRandom(bytes: number): number {
  if (randomAt + bytes > randomPool.length) {
    randomFillSync(randomPool)
    randomAt = 0
  }
  const at = randomAt
  randomAt += bytes
  return at
}

export class LeanWebSocket {
  readonly #socket: Socket
  readonly #handler: WsHandler
  readonly #key: string
  #isOpen = false
  #isClosed = false
  /** Bytes not yet parsed (a partial header or frame). */
  #pending: Buffer | undefined
  /** Payloads of a fragmented message so far. */
  #fragments: Buffer[] | undefined
  /** The server accepted permessage-deflate. */
  #isDeflated = false
  /** The message being received is compressed (RSV1 of its first frame). */
  #isCompressed = false
  /** The message being received is binary (opcode of its first frame). */
  #isBinary = false

  constructor(target: WsTarget, handler: WsHandler) {
    this.#handler = handler
    const keyAt = nextRandom(16)
    this.#key = randomPool.toString('base64', keyAt, keyAt + 16)
    this.#socket = connect({
      host: target.host,
      port: target.port,
      localAddress: target.localAddress,
      noDelay: true,
    })
    const host = `${target.host}:${target.port}`
    this.#socket.once('connect', () => {
      this.#socket.write(
        `GET ${target.path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${this.#key}\r\nSec-WebSocket-Version: 13\r\n` +
          (target.deflate ? `Sec-WebSocket-Extensions: ${DEFLATE_OFFER}\r\n\r\n` : '\r\n'),
      )
    })
    this.#socket.on('data', this.#onData)
    this.#socket.on('error', this.#onError)
    this.#socket.on('close', this.#onClose)
  }

  get isOpen(): boolean {
    return this.#isOpen
  }

  /** Bytes received on the TCP connection so far: the bytes on the wire, after compression. */
  get bytesRead(): number {
    return this.#socket.bytesRead
  }

  /** Whether the server compresses (permessage-deflate accepted). */
  get isDeflated(): boolean {
    return this.#isDeflated
  }

  /** Sends one binary frame; ignored once closed. */
  sendBinary(bytes: Buffer): void {
    if (!this.#isOpen) return
    this.#socket.write(encodeFrame(OP_BINARY, bytes))
  }

  /** Sends one text frame; ignored once closed. */
  send(text: string): void {
    if (!this.#isOpen) return
    this.#socket.write(encodeTextFrame(text))
  }

  /** Stops reading (a client that hangs): the server's writes pile up in the kernel, then in its own buffers. */
  pause(): void {
    this.#socket.pause()
  }

  resume(): void {
    this.#socket.resume()
  }

  /** A close frame (1000), then FIN; the server's close frame or FIN ends it. */
  close(): void {
    if (this.#isClosed) return
    if (this.#isOpen) {
      this.#isOpen = false
      this.#socket.end(encodeFrame(OP_CLOSE, Buffer.from([0x03, 0xe8])))
    } else this.#socket.destroy()
  }

  /** Drops the TCP connection without a close frame (a network cut). */
  destroy(): void {
    this.#socket.destroy()
  }

  readonly #onData = (chunk: Buffer): void => {
    let data = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk])
    this.#pending = undefined
    if (!this.#isOpen && !this.#isClosed) {
      const end = data.indexOf(HEADER_END)
      if (end === -1) {
        this.#pending = data
        return
      }
      if (!this.#acceptUpgrade(data.toString('latin1', 0, end))) return
      data = data.subarray(end + 4)
    }
    this.#readFrames(data)
  }

  /** Checks the 101 and its Sec-WebSocket-Accept (RFC 6455 §4.1); anything else fails the connection. */
  #acceptUpgrade(head: string): boolean {
    const expected = createHash('sha1')
      .update(this.#key + GUID)
      .digest('base64')
    const status = head.slice(0, head.indexOf('\r\n'))
    const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(head)?.[1]
    if (!/^HTTP\/1\.1 101 /.test(status) || accept !== expected) {
      this.#fail(`upgrade refused: ${status}`)
      return false
    }
    this.#isDeflated = /\r\nsec-websocket-extensions:[^\r]*permessage-deflate/i.test(head)
    this.#isOpen = true
    this.#handler.wsOpen(this)
    return true
  }

  #readFrames(data: Buffer): void {
    let at = 0
    while (at < data.length && !this.#isClosed) {
      if (data.length - at < 2) break
      const b0 = data[at]!
      const b1 = data[at + 1]!
      if ((b1 & 0x80) !== 0) return this.#fail('masked frame from the server')
      let length = b1 & 0x7f
      let header = 2
      if (length === 126) {
        if (data.length - at < 4) break
        length = data.readUInt16BE(at + 2)
        header = 4
      } else if (length === 127) {
        if (data.length - at < 10) break
        length = Number(data.readBigUInt64BE(at + 2))
        header = 10
      }
      if (data.length - at < header + length) break
      const payload = data.subarray(at + header, at + header + length)
      at += header + length
      this.#frame(b0, payload)
    }
    if (at < data.length && !this.#isClosed) this.#pending = Buffer.from(data.subarray(at)) // own copy: the chunk is reused
  }

  #frame(b0: number, payload: Buffer): void {
    const isFin = (b0 & 0x80) !== 0
    const opcode = b0 & 0x0f
    if (opcode === OP_TEXT || opcode === OP_BINARY || opcode === OP_CONTINUATION) {
      if (opcode !== OP_CONTINUATION) {
        this.#isCompressed = (b0 & 0x40) !== 0
        this.#isBinary = opcode === OP_BINARY
      }
      if (!isFin || this.#fragments !== undefined) {
        ;(this.#fragments ??= []).push(Buffer.from(payload))
        if (!isFin) return
        payload = Buffer.concat(this.#fragments)
        this.#fragments = undefined
      }
      // A sync-flushed stream without its final block: inflate up to the flush, do not wait for an end.
      if (this.#isCompressed)
        payload = inflateRawSync(Buffer.concat([payload, DEFLATE_TAIL]), {
          finishFlush: constants.Z_SYNC_FLUSH,
        })
      if (this.#isBinary) this.#handler.wsBinary(this, Buffer.from(payload))
      else this.#handler.wsText(this, payload.toString('utf8'))
    } else if (opcode === OP_PING) {
      if (this.#isOpen) this.#socket.write(encodeFrame(OP_PONG, payload))
    } else if (opcode === OP_CLOSE) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
      if (this.#isOpen) {
        this.#isOpen = false
        this.#socket.end(encodeFrame(OP_CLOSE, payload.subarray(0, 2)))
      }
      this.#finish(`close frame ${code}`)
    }
    // OP_PONG: nothing to do (we never ping at the websocket level).
  }

  readonly #onError = (err: Error): void => {
    this.#finish(`socket error: ${err.message}`)
  }

  readonly #onClose = (): void => {
    this.#finish('transport close')
  }

  #fail(reason: string): void {
    this.#socket.destroy()
    this.#finish(reason)
  }

  #finish(reason: string): void {
    if (this.#isClosed) return
    this.#isClosed = true
    this.#isOpen = false
    this.#pending = undefined
    this.#handler.wsClose(this, reason)
  }
}

/** A masked text frame, the text written straight into it (acks: one allocation per frame). */
function encodeTextFrame(text: string): Buffer {
  const length = Buffer.byteLength(text)
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + 4 + length)
  frame.write(text, header + 4)
  return maskFrame(frame, OP_TEXT, header, length, frame)
}

/** One masked client frame (RFC 6455 §5.2): header, mask key, payload XOR the key. */
function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  return maskFrame(Buffer.allocUnsafe(header + 4 + length), opcode, header, length, payload)
}

/** Fills in the header and mask key, and writes `payload` (which may be the frame's own tail) masked. */
function maskFrame(frame: Buffer, opcode: number, header: number, length: number, payload: Buffer): Buffer {
  const at = payload === frame ? header + 4 : 0
  frame[0] = 0x80 | opcode
  if (header === 2) frame[1] = 0x80 | length
  else if (header === 4) {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 0x80 | 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  const mask = nextRandom(4)
  randomPool.copy(frame, header, mask, mask + 4)
  const m0 = randomPool[mask]!
  const m1 = randomPool[mask + 1]!
  const m2 = randomPool[mask + 2]!
  const m3 = randomPool[mask + 3]!
  const start = header + 4
  for (let i = 0; i < length; i += 4) {
    frame[start + i] = payload[at + i]! ^ m0
    if (i + 1 < length) frame[start + i + 1] = payload[at + i + 1]! ^ m1
    if (i + 2 < length) frame[start + i + 2] = payload[at + i + 2]! ^ m2
    if (i + 3 < length) frame[start + i + 3] = payload[at + i + 3]! ^ m3
  }
  return frame
}
