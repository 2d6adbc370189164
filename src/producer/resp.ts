/**
 * RESP bulk strings, the producer framing: `$<byte length>\r\n<payload>\r\n`.
 * snapper-producer only ever sends bulk strings, coalesced and split at any
 * byte, so the decoder is an incremental state machine over a queue of
 * chunks. It never throws: bad input gives a FramingError, after which the
 * stream cannot be resynchronised and the connection must close.
 *
 *   TYPE '$' ─▶ LENGTH digit ─▶ LENGTH_MORE digit* ─▶ HEADER_LF ─▶ BODY ─▶ TRAILER_CR ─▶ TRAILER_LF ─▶ frame
 *            (\r ends LENGTH_MORE)
 *
 * Pure: imports nothing but errors.ts, so it can be fuzzed alone.
 */
import type { ErrorCode } from '../errors.js'

/** Why the byte stream cannot be read any further. */
export interface FramingError {
  readonly code: Extract<ErrorCode, 'FRAME_TOO_LARGE' | 'BAD_FRAMING'>
  /** What was wrong, for the log only (clients see the ERRORS text). */
  readonly detail: string
}

export function isFramingError(value: Buffer | FramingError | undefined): value is FramingError {
  return value !== undefined && !Buffer.isBuffer(value)
}

const DOLLAR = 0x24
const CR = 0x0d
const LF = 0x0a
const ZERO = 0x30
const NINE = 0x39

const enum Stage {
  Type,
  Length,
  LengthMore,
  HeaderLf,
  Body,
  TrailerCr,
  TrailerLf,
}

/** RESP type bytes snapper-producer never sends: named in the log to tell a wrong client from noise. */
const OTHER_TYPES: Readonly<Record<number, string>> = {
  0x2b: 'simple string',
  0x2d: 'error',
  0x3a: 'integer',
  0x2a: 'array',
}

export class RespDecoder {
  #maxFrameBytes: number
  /** Unread input; the first chunk is read from #offset. */
  readonly #chunks: Buffer[] = []
  #offset = 0
  #bufferedBytes = 0
  #stage = Stage.Type
  /** Payload length being read from the header, then the body's length. */
  #length = 0
  /** The body when it spans chunks: preallocated at its known length. */
  #body: Buffer | undefined
  #bodyFilled = 0
  /** A body read whole, waiting for its trailer. */
  #payload: Buffer | undefined
  /** A payload with its trailer checked, ready for next(). */
  #frame: Buffer | undefined
  #error: FramingError | undefined

  /** @param maxFrameBytes largest payload accepted; a larger one is refused from its header alone. */
  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes
  }

  /** Changes the largest payload accepted, from the frame being read on (a connection's first frame has its own). */
  setMaxFrameBytes(maxFrameBytes: number): void {
    this.#maxFrameBytes = maxFrameBytes
  }

  /** Input held and not yet returned as frames, in bytes (a partial body counts). */
  get bufferedBytes(): number {
    return this.#bufferedBytes + this.#bodyFilled
  }

  /** Queues a chunk; frames are taken out with next(). The chunk must not be modified afterwards. */
  push(chunk: Buffer): void {
    if (this.#error || chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#bufferedBytes += chunk.length
  }

  /** Drops all input; next() then returns undefined (or the error, once failed). */
  discard(): void {
    this.#chunks.length = 0
    this.#offset = 0
    this.#bufferedBytes = 0
    this.#body = undefined
    this.#bodyFilled = 0
    this.#payload = undefined
    this.#length = 0
    this.#stage = Stage.Type
  }

  /**
   * The next complete payload, undefined when more input is needed, or the
   * error that stopped the stream (returned again on every later call).
   * A payload may share memory with a pushed chunk: valid as long as that chunk.
   */
  next(): Buffer | FramingError | undefined {
    while (!this.#error && this.#frame === undefined) {
      const chunk = this.#chunks[0]
      if (chunk === undefined) return undefined
      this.#read(chunk)
      if (this.#error) break
      if (this.#offset === chunk.length) {
        this.#chunks.shift()
        this.#offset = 0
      }
    }
    if (this.#error) return this.#error
    const frame = this.#frame
    this.#frame = undefined
    return frame
  }

  /** Advances through one chunk until a frame is complete, an error, or the chunk's end. */
  #read(chunk: Buffer): void {
    const start = this.#offset
    let at = start
    while (at < chunk.length && this.#frame === undefined && !this.#error) {
      if (this.#stage === Stage.Body) {
        at = this.#readBody(chunk, at)
        continue
      }
      const byte = chunk[at++]!
      switch (this.#stage) {
        case Stage.Type:
          if (byte === DOLLAR) this.#stage = Stage.Length
          else
            this.#fail(
              'BAD_FRAMING',
              `${OTHER_TYPES[byte] ?? `byte 0x${byte.toString(16)}`} at a frame start`,
            )
          break
        case Stage.Length:
        case Stage.LengthMore:
          if (byte >= ZERO && byte <= NINE) {
            this.#length = this.#length * 10 + (byte - ZERO)
            this.#stage = Stage.LengthMore
            if (this.#length > this.#maxFrameBytes)
              this.#fail('FRAME_TOO_LARGE', `length over ${this.#maxFrameBytes} bytes`)
          } else if (byte === CR && this.#stage === Stage.LengthMore) this.#stage = Stage.HeaderLf
          else this.#fail('BAD_FRAMING', byte === 0x2d ? 'null or negative bulk length' : 'bad bulk length')
          break
        case Stage.HeaderLf:
          if (byte !== LF) this.#fail('BAD_FRAMING', 'bad bulk header end')
          else if (this.#length === 0) this.#stage = Stage.TrailerCr
          else this.#stage = Stage.Body
          break
        case Stage.TrailerCr:
          if (byte === CR) this.#stage = Stage.TrailerLf
          else this.#fail('BAD_FRAMING', 'bulk longer than its length')
          break
        case Stage.TrailerLf:
          if (byte === LF) this.#complete()
          else this.#fail('BAD_FRAMING', 'bulk longer than its length')
          break
      }
    }
    if (this.#error) return // discard() has already dropped every chunk
    this.#bufferedBytes -= at - start
    this.#offset = at
  }

  /** Takes body bytes from `at`; zero-copy when the whole body lies in this chunk. */
  #readBody(chunk: Buffer, at: number): number {
    const available = chunk.length - at
    if (this.#body === undefined && available >= this.#length) {
      this.#payload = chunk.subarray(at, at + this.#length)
      this.#stage = Stage.TrailerCr
      return at + this.#length
    }
    this.#body ??= Buffer.allocUnsafe(this.#length)
    const n = Math.min(available, this.#length - this.#bodyFilled)
    chunk.copy(this.#body, this.#bodyFilled, at, at + n)
    this.#bodyFilled += n
    if (this.#bodyFilled === this.#length) {
      this.#payload = this.#body
      this.#body = undefined
      this.#bodyFilled = 0
      this.#stage = Stage.TrailerCr
    }
    return at + n
  }

  /** A frame is handed out only once its trailer is there: `$3\r\nabcd` is an error, not a frame. */
  #complete(): void {
    this.#frame = this.#payload ?? Buffer.alloc(0)
    this.#payload = undefined
    this.#length = 0
    this.#stage = Stage.Type
  }

  #fail(code: FramingError['code'], detail: string): void {
    this.#error = { code, detail }
    this.#frame = undefined
    this.#payload = undefined
    this.discard()
  }
}

/**
 * One bulk-string frame around a JSON text. Returned as a string so that
 * several replies can be joined into one socket write; its header counts
 * UTF-8 bytes, not characters.
 */
export function encodeBulk(payload: string): string {
  return `$${Buffer.byteLength(payload)}\r\n${payload}\r\n`
}
