import { gzip } from 'node:zlib'
import type { HttpResponse } from 'uWebSockets.js'
import { SnapperError } from '../../errors.js'
import { guard } from '../../guard.js'
import type { Logger } from '../../log.js'
import { type Cors, ENGINE_ERRORS, type RequestInfo, statusLine, writeEmpty, writeRefusal } from './http.js'
import {
  CLOSE,
  type EncodedMessage,
  NOOP,
  type OutPacket,
  type Revision,
  decodeBinaryPayload,
  decodeTextPayload,
  encodeBinaryPayload,
  encodeTextPayload,
} from './packet.js'
import { type Ending, TOO_MUCH_INPUT, TOO_SLOW, type Transport, type TransportOwner } from './transport.js'

export interface PollingSettings {
  readonly revision: Revision
  /** The handshake asked for `b64`: never send a binary body. */
  readonly isB64: boolean
  readonly maxPayloadBytes: number
  readonly maxBackpressureBytes: number
  /** How long a server-closed transport keeps its close packet for a next GET, in ms. */
  readonly lingerMs: number
  readonly cors: Cors
  /** Where a callback that throws (a bug) is logged; the session then closes. */
  readonly log: Logger
}

/** A held GET. `res` is valid until `isDone` (ended or aborted). */
interface PendingGet {
  readonly res: HttpResponse
  readonly origin: string
  readonly acceptsGzip: boolean
  readonly setCookie: string | undefined
  isDone: boolean
}

/** Responses of at least this many bytes are gzipped when the client accepts it (engine.io's threshold). */
const GZIP_MIN_BYTES = 1024
const TEXT_TYPE = 'text/plain; charset=UTF-8'
const BINARY_TYPE = 'application/octet-stream'

/**
 * HTTP long-polling (docs/consumer-protocol.md §4). Packets queue here until a GET takes them all:
 *
 *   write() ─▶ queue ─▶ (a GET is held?) ─▶ one payload per tick ─▶ 200
 *   POST ─▶ body, size-checked while it streams ─▶ decode ─▶ owner.receive() ─▶ 200 ok
 *
 * At most one GET and one POST at a time; a second of either closes the session.
 */
export class PollingTransport implements Transport {
  readonly name = 'polling'
  readonly #owner: TransportOwner
  readonly #settings: PollingSettings
  #queue: OutPacket[] = []
  #queuedBytes = 0
  /** The largest packet in the queue, in bytes: it does not count against maxBackpressureBytes. */
  #largestBytes = 0
  #get: PendingGet | undefined
  #isPosting = false
  #isFlushScheduled = false
  #state: 'open' | 'lingering' | 'ended' = 'open'
  #lingerTimer: NodeJS.Timeout | undefined

  constructor(owner: TransportOwner, settings: PollingSettings) {
    this.#owner = owner
    this.#settings = settings
    this.#flush = this.#guard('polling flush', this.#flushNow)
  }

  /**
   * Callbacks the event loop or uWS calls (the flush microtask, the linger
   * timer, gzip's callback, onData, onAborted) are guarded: a throw fails this
   * session, never the process.
   */
  #guard<A extends unknown[]>(site: string, fn: (...args: A) => void): (...args: A) => void {
    return guard(this.#settings.log, site, fn, () => this.#owner.fail(this, 'internal error'))
  }

  write(packet: OutPacket): void {
    this.#enqueue(packet, typeof packet === 'string' ? Buffer.byteLength(packet) : packet.length)
  }

  writeEncoded(message: EncodedMessage): void {
    this.#enqueue(message.packet, message.byteLength)
  }

  #enqueue(packet: OutPacket, byteLength: number): void {
    if (this.#state !== 'open') return
    this.#queue.push(packet)
    this.#queuedBytes += byteLength
    this.#largestBytes = Math.max(this.#largestBytes, byteLength)
    // One packet may be bigger than the limit on its own (a batch of short messages that JSON
    // escapes six-fold, say): it goes out whole in one response, as uWS sends one websocket
    // message past maxBackpressure. Refusing it would close the session, and the batch would come
    // back after the open packet of the next handshake, forever. What queues besides it is bounded.
    if (this.#queuedBytes - this.#largestBytes > this.#settings.maxBackpressureBytes) {
      this.#owner.fail(this, TOO_SLOW)
      return
    }
    // Whatever else is sent in this tick goes in the same payload.
    if (this.#get !== undefined && !this.#isFlushScheduled) {
      this.#isFlushScheduled = true
      queueMicrotask(this.#flush)
    }
  }

  readonly #flush: () => void

  readonly #flushNow = (): void => {
    this.#isFlushScheduled = false
    const get = this.#get
    if (get === undefined || this.#queue.length === 0) return
    this.#get = undefined
    this.#answer(get, this.#takeQueue())
  }

  #takeQueue(): OutPacket[] {
    const packets = this.#queue
    this.#queue = []
    this.#queuedBytes = this.#largestBytes = 0
    return packets
  }

  /** During an upgrade: release a held GET with a noop so that the client can pause polling. */
  nudge(): void {
    if (this.#get !== undefined) this.#enqueue(NOOP, 1)
  }

  /** A GET: answered at once if packets wait, else held until some do. */
  poll(res: HttpResponse, request: RequestInfo, setCookie?: string): void {
    if (this.#state === 'ended') {
      writeEmpty(res, 400, this.#settings.cors, request.origin) // the server routes none here; be safe
      return
    }
    if (this.#get !== undefined) {
      writeEmpty(res, 400, this.#settings.cors, request.origin)
      this.#owner.fail(this, 'transport error')
      return
    }
    const get: PendingGet = {
      res,
      origin: request.origin,
      acceptsGzip: request.acceptsGzip,
      setCookie,
      isDone: false,
    }
    res.onAborted(
      this.#guard('polling GET aborted', () => {
        if (get.isDone) return
        get.isDone = true
        if (this.#get === get) this.#get = undefined
        // A lost poll may have carried packets (gzip in progress): the session cannot go on.
        this.#owner.lost(this, 'transport error')
      }),
    )
    if (this.#state === 'lingering') {
      this.#answer(get, this.#takeQueue())
      this.#stopLingering()
      return
    }
    this.#get = get
    if (this.#queue.length > 0) this.#flush()
  }

  #answer(get: PendingGet, packets: OutPacket[]): void {
    const { revision, isB64 } = this.#settings
    const isBinary = revision === 3 && !isB64 && packets.some(packet => typeof packet !== 'string')
    const body = isBinary ? encodeBinaryPayload(packets) : encodeTextPayload(packets, revision)
    const type = isBinary ? BINARY_TYPE : TEXT_TYPE
    if (get.acceptsGzip && body.length >= GZIP_MIN_BYTES) {
      gzip(
        body,
        this.#guard('polling gzip', (err: Error | null, zipped: Buffer) => {
          if (get.isDone) return
          get.res.cork(() =>
            err ? this.#writeBody(get, type, body, false) : this.#writeBody(get, type, zipped, true),
          )
        }),
      )
      return
    }
    get.res.cork(() => this.#writeBody(get, type, body, false))
  }

  #writeBody(get: PendingGet, type: string, body: string | Buffer, isGzipped: boolean): void {
    get.isDone = true
    const { res } = get
    res.writeStatus(statusLine(200))
    this.#settings.cors.write(res, get.origin)
    res.writeHeader('Content-Type', type).writeHeader('Cache-Control', 'no-store')
    if (isGzipped) res.writeHeader('Content-Encoding', 'gzip')
    if (get.setCookie !== undefined) res.writeHeader('Set-Cookie', get.setCookie)
    res.end(body)
  }

  /** A POST: the body is read with a running size check, decoded, handed over, then answered `ok`. */
  post(res: HttpResponse, request: RequestInfo): void {
    const { cors, maxPayloadBytes, revision } = this.#settings
    const { origin } = request
    const isBinary = request.contentType.startsWith(BINARY_TYPE)
    // Refusals before the body is read close the connection, so uWS stops reading it.
    if (this.#isPosting || (isBinary && revision === 4)) {
      writeEmpty(res, 400, cors, origin, true)
      this.#owner.fail(this, 'transport error')
      return
    }
    if (request.contentLength > maxPayloadBytes) {
      writeEmpty(res, 413, cors, origin, true)
      this.#owner.fail(this, 'transport error')
      return
    }
    this.#isPosting = true
    const chunks: Buffer[] = []
    let size = 0
    let isDone = false
    res.onAborted(
      this.#guard('polling POST aborted', () => {
        if (isDone) return
        isDone = true
        this.#isPosting = false
        this.#owner.lost(this, 'transport error')
      }),
    )
    const onData = (chunk: ArrayBuffer, isLast: boolean): void => {
      if (isDone) return
      size += chunk.byteLength
      if (size > maxPayloadBytes) {
        isDone = true
        this.#isPosting = false
        writeEmpty(res, 413, cors, origin, true)
        this.#owner.fail(this, 'transport error')
        return
      }
      chunks.push(Buffer.from(new Uint8Array(chunk))) // a copy: uWS neuters `chunk` on return
      if (!isLast) return
      isDone = true
      this.#isPosting = false
      // The bytes before they are decoded, then each packet before any is handled (inputBytesPerPacket).
      const refuseInput = (): void => {
        writeEmpty(res, 429, cors, origin, true)
        this.#owner.fail(this, TOO_MUCH_INPUT)
      }
      if (!this.#owner.admitsInput(size, 0)) return refuseInput()
      const delivered = this.#deliver(Buffer.concat(chunks, size), isBinary)
      if (delivered === 'too much input') return refuseInput()
      if (delivered === 'dropped') {
        res.cork(() => writeRefusal(res, ENGINE_ERRORS.UNKNOWN_SID, cors, origin))
        return
      }
      res.cork(() => {
        res.writeStatus(statusLine(200))
        cors.write(res, origin)
        res.writeHeader('Content-Type', 'text/html').end('ok')
      })
    }
    // A throw fails the session; the request, not yet answered, gets a 500.
    res.onData(
      guard(this.#settings.log, 'polling POST data', onData, () => {
        if (!isDone) writeEmpty(res, 500, cors, origin, true)
        isDone = true
        this.#isPosting = false
        this.#owner.fail(this, 'internal error')
      }),
    )
  }

  /**
   * `dropped` if the payload was dropped whole, as a replaced client's (answered as for an unknown
   * sid); `too much input` if its packets are past the input budget, and none was handled.
   */
  #deliver(body: Buffer, isBinary: boolean): 'handled' | 'dropped' | 'too much input' {
    const packets = isBinary
      ? decodeBinaryPayload(body)
      : decodeTextPayload(body.toString(), this.#settings.revision)
    if (packets instanceof SnapperError) {
      this.#owner.fail(this, 'parse error')
      return 'handled'
    }
    if (packets.some(packet => packet.type === 'close') && !this.#owner.takesClose()) return 'dropped'
    if (!this.#owner.admitsInput(0, packets.length)) return 'too much input'
    // The owner ignores what follows once a packet has closed the session.
    for (const packet of packets) this.#owner.receive(packet, this)
    return 'handled'
  }

  /** The upgrade completed: hand the queue to the websocket and release a held GET. */
  handOver(): OutPacket[] {
    const packets = this.#takeQueue()
    this.#finish([NOOP])
    return packets
  }

  end(ending: Ending): boolean {
    if (this.#state !== 'open') return false
    if (ending === 'replaced') this.#takeQueue()
    else if (ending !== 'flush') {
      this.#takeQueue()
      this.#finish(ending === 'close' ? [CLOSE] : [NOOP])
      return false
    }
    this.#queue.push(CLOSE)
    if (this.#get !== undefined) {
      this.#finish(this.#takeQueue())
      return false
    }
    this.#state = 'lingering'
    this.#lingerTimer = setTimeout(
      this.#guard('polling linger', () => this.#stopLingering()),
      this.#settings.lingerMs,
    )
    return true
  }

  /** Stops now; a held GET gets `last`. */
  #finish(last: OutPacket[]): void {
    this.#state = 'ended'
    const get = this.#get
    this.#get = undefined
    if (get !== undefined) this.#answer(get, last)
  }

  /** The close packet was handed over, or nobody came for it, or the engine shuts down. */
  stopLingering(): void {
    if (this.#state === 'lingering') this.#stopLingering()
  }

  #stopLingering(): void {
    this.#state = 'ended'
    clearTimeout(this.#lingerTimer)
    this.#takeQueue()
    this.#owner.lingered(this)
  }
}
