import type { WebSocket } from 'uWebSockets.js'
import { SnapperError } from '../../errors.js'
import type { BufferedBytes } from './buffered-bytes.js'
import {
  type EncodedMessage,
  type OutPacket,
  type Packet,
  type Revision,
  decodeBinaryPacket,
  decodeTextPacket,
  encodeBinaryFrame,
} from './packet.js'
import {
  TOO_MUCH_INPUT,
  TOO_SLOW,
  TOO_SLOW_FOR_NODE,
  type Transport,
  type TransportOwner,
} from './transport.js'

export interface WebSocketSettings {
  readonly revision: Revision
  /** The upgrade request asked for `b64`: binary messages go as base64 text frames. */
  readonly isB64: boolean
  readonly maxPayloadBytes: number
  /** Ask uWS to compress messages (it does where the client accepted permessage-deflate). */
  readonly compresses: boolean
  /** What uWS buffers towards all websockets of the node, and its bound. */
  readonly buffered: BufferedBytes
}

/** uWS `send` result: the message went to the kernel whole, nothing buffered for it. */
const SUCCESS = 1
/** uWS `send` result: the message was dropped, the socket is past maxBackpressure. */
const DROPPED = 2
/** WebSocket close code "message too big". */
const MESSAGE_TOO_BIG = 1009
/** WebSocket close code "policy violation": past the session's input budget. */
const POLICY_VIOLATION = 1008
/** WebSocket close code "internal error". */
const INTERNAL_ERROR = 1011
/** WebSocket close code "try again later". */
const TRY_AGAIN_LATER = 1013

/**
 * One Engine.IO packet per websocket message (docs/consumer-protocol.md §5). Made in the upgrade
 * handler, before the socket exists, and kept in the socket's user data; the
 * session binds itself once the socket opens. Every way the socket ends goes
 * through uWS's close handler, which reports `lost` to the owner once.
 */
export class WebSocketTransport implements Transport {
  readonly name = 'websocket'
  readonly #settings: WebSocketSettings
  #ws: WebSocket<unknown> | undefined
  #owner: TransportOwner | undefined
  #closeReason = 'transport close'
  /** What uWS buffered towards this socket after the last send or drain, as counted in the node's total. */
  #bufferedBytes = 0
  /**
   * What the client sent between the 101 and its open packet (the session still preparing),
   * for the session once it opens; the bytes they took, bounded by maxPayloadBytes.
   */
  #early: Packet[] | undefined
  #earlyBytes = 0

  constructor(settings: WebSocketSettings) {
    this.#settings = settings
  }

  /** uWS `open`: the socket exists. */
  opened(ws: WebSocket<unknown>): void {
    this.#ws = ws
  }

  /** Until uWS reports the socket closed. */
  get isOpen(): boolean {
    return this.#ws !== undefined
  }

  /** Runs `send` with the socket corked: its writes go out in one syscall. */
  cork(send: () => void): void {
    if (this.#ws === undefined) send()
    else this.#ws.cork(send)
  }

  bind(owner: TransportOwner): this {
    this.#owner = owner
    return this
  }

  write(packet: OutPacket): void {
    const ws = this.#ws
    if (ws === undefined) return
    const { compresses } = this.#settings
    // Heartbeats and other one-character packets are not worth deflating.
    if (typeof packet === 'string') this.#sent(ws.send(packet, false, compresses && packet.length > 1))
    else {
      const frame = encodeBinaryFrame(packet, this.#settings.revision, this.#settings.isB64)
      this.#sent(ws.send(frame, typeof frame !== 'string', compresses))
    }
  }

  writeEncoded(message: EncodedMessage): void {
    // The same bytes for every socket, sent as a text frame.
    if (this.#ws !== undefined) this.#sent(this.#ws.send(message.wire(), false, this.#settings.compresses))
  }

  /** The packets polling held during the upgrade, in order, in one syscall. */
  writeAll(packets: readonly OutPacket[]): void {
    this.cork(() => {
      for (const packet of packets) this.write(packet)
    })
  }

  #sent(status: number): void {
    // A dropped message breaks the session's order, so the session cannot go on.
    if (status === DROPPED) this.#close(TOO_SLOW, true)
    // A reader's usual send: written whole to a socket that held nothing, so it holds nothing now.
    else if (status !== SUCCESS || this.#bufferedBytes > 0) this.#countBuffered()
  }

  /** uWS `drain`: some of what was buffered went out. */
  drained(): void {
    this.#countBuffered()
  }

  /** Reports this socket's buffered amount to the node's total; cut if the total asks it. */
  #countBuffered(): void {
    const ws = this.#ws
    if (ws === undefined) return
    const before = this.#bufferedBytes
    this.#bufferedBytes = ws.getBufferedAmount()
    // Forced, as past maxBackpressure: a close frame would queue behind what the client does not read.
    if (this.#settings.buffered.report(before, this.#bufferedBytes)) this.#close(TOO_SLOW_FOR_NODE, true)
  }

  /** uWS `message`: `data` dies when this returns, so it is decoded (copied) here. */
  received(data: ArrayBuffer, isBinary: boolean): void {
    if (this.#ws === undefined) return
    const { maxPayloadBytes, revision } = this.#settings
    // Before the session opens, what the client sends waits for it (docs/consumer-protocol.md §3): in all, one payload.
    const earlyBytes = this.#owner === undefined ? this.#earlyBytes + data.byteLength : 0
    if (data.byteLength > maxPayloadBytes || earlyBytes > maxPayloadBytes) {
      this.#close('transport error', false, MESSAGE_TOO_BIG)
      return
    }
    // Early bytes are counted once the session opens (deliverEarly): its budget is not known before.
    if (this.#owner !== undefined && !this.#owner.admitsInput(data.byteLength, 1)) {
      this.#close(TOO_MUCH_INPUT, false, POLICY_VIOLATION)
      return
    }
    const packet = isBinary
      ? decodeBinaryPacket(Buffer.from(new Uint8Array(data)), revision)
      : decodeTextPacket(Buffer.from(data).toString(), revision)
    if (packet instanceof SnapperError) this.#close('parse error')
    else if (this.#owner !== undefined) this.#owner.receive(packet, this)
    else {
      this.#earlyBytes = earlyBytes
      ;(this.#early ??= []).push(packet)
    }
  }

  /** The session opened: it gets, in order, what the client sent before its open packet. */
  deliverEarly(): void {
    const early = this.#early
    const earlyBytes = this.#earlyBytes
    this.#early = undefined
    this.#earlyBytes = 0
    if (early === undefined || this.#owner === undefined) return
    // A reconnect loop sending a payload before each open packet spends the same budget as one session.
    if (!this.#owner.admitsInput(earlyBytes, early.length)) {
      this.#close(TOO_MUCH_INPUT, false, POLICY_VIOLATION)
      return
    }
    for (const packet of early) this.#owner.receive(packet, this)
  }

  /** Closes with 1011 (internal error): the session could not open. */
  fail(): void {
    this.#close('internal error', false, INTERNAL_ERROR)
  }

  /** Closes with 1013 (try again later): the session could not open in time (EngineOptions.prepareTimeout). */
  tryAgainLater(): void {
    this.#close('try again later', false, TRY_AGAIN_LATER)
  }

  /** The session ended: a close frame without a code, as engine.io does (client sees 1005). */
  end(): boolean {
    this.#close('transport close')
    return false
  }

  /**
   * uWS calls its close handler synchronously from `end`/`close`, and the
   * socket must not be touched after that; `reason` is what the owner hears.
   */
  #close(reason: string, isForced = false, code?: number): void {
    const ws = this.#ws
    if (ws === undefined) return
    this.#closeReason = reason
    if (isForced) ws.close()
    else if (code === undefined) ws.end()
    else ws.end(code)
  }

  /** uWS `close`: whoever closed it, the socket is gone now. */
  closed(): void {
    this.#ws = undefined
    this.#settings.buffered.report(this.#bufferedBytes, 0)
    this.#bufferedBytes = 0
    this.#owner?.lost(this, this.#closeReason)
  }
}
