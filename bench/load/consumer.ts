/**
 * A lean consumer: Engine.IO over a direct websocket (`transport=websocket`,
 * EIO=4 or 3, no polling first), speaking either snapper's consumer JSON-RPC
 * exactly as snapper-consumer@1.3.6 does, or Socket.IO 4 (for the peer).
 *
 * snapper: every `publish` request is acked at once with
 * `{"jsonrpc":"2.0","id":<id>,"result":"OK"}` (jsonrpc-lite's key order), and
 * its messages are delivered unless its id equals the previous request's id
 * (a re-sent batch), which survives reconnects as in snapper-consumer.
 * Socket.IO: CONNECT `40` after the open packet, then every EVENT
 * `42["m","<message>"]` delivers one message.
 *
 * With a `codec` (json, msgpack) it asks for the SDK's delivery format and
 * reads `deliver` runs, as text or msgpack binary, acking in kind; with
 * `deflate` it offers permessage-deflate. It counts the bytes it receives.
 *
 * Heartbeats: EIO=4 answers the server's `2` with `3`; EIO=3 pings itself
 * every pingInterval (the worker's sweep calls heartbeat()).
 *
 * With a `room` (fault runs), it checks that room's messages exactly, as an
 * application would see them: each seq seen or not (a bitset), so a message
 * seen again is a duplicate by content, one first seen below the highest seq
 * is out of order, and `missing()` tells what never came.
 */
import { Packr } from 'msgpackr'
import type { Histogram } from '../lib/histogram.js'
import { nowUs, seqOf, sentUsOf } from './message.js'
import { LeanWebSocket, type WsHandler, type WsTarget } from './ws-client.js'

export type ConsumerProtocol = 'snapper' | 'socketio'

export interface ConsumerSpec {
  readonly host: string
  readonly port: number
  /** Path and query, `EIO` and `transport=websocket` included. */
  readonly path: string
  readonly localAddress?: string
  readonly protocol: ConsumerProtocol
  readonly eio: 3 | 4
  /** The SDK's delivery format (`codec=` is in the path too); none: the original's. */
  readonly codec?: 'json' | 'msgpack'
  /** Offer permessage-deflate. */
  readonly deflate?: boolean
  /** Gateways to reconnect to in turn when a connect fails, as a load balancer fails over. */
  readonly ports?: readonly number[]
  /** The one room whose messages are checked exactly (fault runs): seqs counted per message, not per stream. */
  readonly room?: string
}

const packr = new Packr({ useRecords: false, int64AsType: 'number' })

type Run = [room: string, storedAtMs: number, seq: number, messages: string[]]

/** What a consumer tells the thread that runs it. */
export interface ConsumerHost {
  readonly latency: Histogram
  opened(consumer: LeanConsumer): void
  closed(consumer: LeanConsumer, reason: string): void
}

export class LeanConsumer implements WsHandler {
  readonly spec: ConsumerSpec
  readonly #host: ConsumerHost
  #ws: LeanWebSocket | undefined
  /** The Engine.IO sid: for snapper, the consumer id derived from the token. */
  sid = ''
  isOpen = false
  /** Messages handed to the application (re-sent batches skipped, as the client does). */
  received = 0
  /** Messages whose seq was not above the last one: delivered twice or out of order (with a room: seen before). */
  dups = 0
  /** With a room: messages first seen after a higher seq. */
  outOfOrder = 0
  /** When its open session dropped (µs), until it opens again: the reconnect time. */
  droppedAtUs = 0
  /** Seqs skipped over (a later message came first, or a message never came). */
  gaps = 0
  lastSeq = 0
  /** Warm-up messages (seq 0) seen: the bench waits for them before it measures. */
  warmups = 0
  /** Set to an array to keep every message handed to the application (tests compare them). */
  recorded: string[] | undefined
  /** When the last counted message arrived, µs CLOCK_MONOTONIC. */
  lastAt = 0
  connectStartUs = 0
  /** The current connection got its 101 (the websocket is up; the open packet may not have come yet). */
  isUpgraded = false
  openUs = 0
  closes = 0
  lastCloseReason = ''
  /** Bytes received by connections already closed. */
  #closedBytes = 0
  /** wireBytes at the last reset. */
  wireBytesBase = 0
  /** The last `publish` request id, kept across reconnects like snapper-consumer's lastResponseId. */
  #lastBatchId: unknown = undefined
  #pingIntervalMs = 25_000
  #nextPingAt = 0
  /** With a room: bit n is seq n seen. */
  #seen: Uint8Array | undefined
  /** Which of spec.ports it connects to: a connect that never opens moves on to the next. */
  #portIndex = 0
  #isStalled = false

  constructor(spec: ConsumerSpec, host: ConsumerHost) {
    this.spec = spec
    this.#host = host
  }

  /** Bytes received on the wire, every connection of this consumer together. */
  get wireBytes(): number {
    return this.#closedBytes + (this.#ws?.bytesRead ?? 0)
  }

  connect(localAddress?: string): void {
    this.connectStartUs = nowUs()
    this.isUpgraded = false
    const port = this.spec.ports?.[this.#portIndex] ?? this.spec.port
    const target: WsTarget = { ...this.spec, port, localAddress: localAddress ?? this.spec.localAddress }
    this.#ws = new LeanWebSocket(target, this)
  }

  /** Stops reading from its connection (and the next ones) until resumeReading(). */
  stallReading(): void {
    this.#isStalled = true
    this.#ws?.pause()
  }

  resumeReading(): void {
    this.#isStalled = false
    this.#ws?.resume()
  }

  /** With a room: how many of `seqs` never arrived. */
  missing(seqs: readonly number[]): number {
    let count = 0
    for (const seq of seqs) if (!this.#hasSeen(seq)) count++
    return count
  }

  /** A client close (close frame, then FIN). */
  close(): void {
    this.#ws?.close()
  }

  /** v3 only: pings when due (the thread running it calls this every second). */
  heartbeat(nowMs: number): void {
    if (!this.isOpen || this.spec.eio !== 3 || nowMs < this.#nextPingAt) return
    this.#nextPingAt = nowMs + this.#pingIntervalMs
    this.#ws?.send('2')
  }

  wsOpen(ws: LeanWebSocket): void {
    // The websocket is up; the session opens with the Engine.IO open packet.
    this.isUpgraded = true
    if (this.#isStalled) ws.pause()
  }

  wsText(ws: LeanWebSocket, text: string): void {
    const type = text.charCodeAt(0)
    if (type === 0x34)
      this.#message(ws, text) // '4'
    else if (type === 0x32)
      ws.send('3') // '2': v4 server ping
    else if (type === 0x30)
      this.#openPacket(ws, text) // '0'
    else if (type === 0x31) ws.close() // '1': close
    // '3' pong, '6' noop: nothing to do.
  }

  wsBinary(ws: LeanWebSocket, bytes: Buffer): void {
    // msgpack deliveries: the same object as the json codec's text.
    this.#deliverRpc(ws, packr.unpack(bytes) as { id?: unknown; method?: string; params?: unknown })
  }

  wsClose(ws: LeanWebSocket, reason: string): void {
    this.#closedBytes += ws.bytesRead
    const wasOpen = this.isOpen
    if (wasOpen) this.droppedAtUs = nowUs()
    else if (this.spec.ports) this.#portIndex = (this.#portIndex + 1) % this.spec.ports.length
    this.isOpen = false
    this.#ws = undefined
    this.closes++
    this.lastCloseReason = reason
    this.#host.closed(this, wasOpen ? reason : `never opened: ${reason}`)
  }

  #openPacket(ws: LeanWebSocket, text: string): void {
    const open = JSON.parse(text.slice(1)) as { sid: string; pingInterval: number }
    this.sid = open.sid
    this.#pingIntervalMs = open.pingInterval
    this.#nextPingAt = Date.now() + open.pingInterval
    if (this.spec.protocol === 'socketio')
      ws.send('40') // Socket.IO CONNECT to the main namespace
    else this.#opened()
  }

  #opened(): void {
    this.isOpen = true
    this.openUs = nowUs()
    this.#host.opened(this)
  }

  #message(ws: LeanWebSocket, text: string): void {
    if (this.spec.protocol === 'socketio') {
      // '42[…]' EVENT, '40{…}' CONNECT answer; anything else (errors, acks) is not bench traffic.
      if (text.charCodeAt(1) === 0x32) this.#deliverOne((JSON.parse(text.slice(2)) as [string, string])[1])
      else if (text.charCodeAt(1) === 0x30 && !this.isOpen) this.#opened()
      return
    }
    const rpc = JSON.parse(text.slice(1)) as { id?: unknown; method?: string; params?: unknown }
    if (this.spec.codec !== undefined) return this.#deliverRpc(ws, rpc)
    if (rpc.method !== 'publish' || rpc.id === undefined) return // echo answers, `invalid` notices
    // What snapper-consumer does: ack first, then deliver unless it is the previous request again.
    ws.send(`4{"jsonrpc":"2.0","id":${JSON.stringify(rpc.id)},"result":"OK"}`)
    if (rpc.id === this.#lastBatchId) return
    this.#lastBatchId = rpc.id
    const messages = rpc.params as string[]
    const now = nowUs()
    for (let i = 0; i < messages.length; i++) this.#count(messages[i]!, now)
  }

  /** A codec session's delivery: runs of messages; acked in the session's codec. */
  #deliverRpc(ws: LeanWebSocket, rpc: { id?: unknown; method?: string; params?: unknown }): void {
    if (rpc.method !== 'deliver' || rpc.id === undefined) return
    if (this.spec.codec === 'msgpack') ws.sendBinary(packr.pack({ jsonrpc: '2.0', id: rpc.id, result: 'OK' }))
    else ws.send(`4{"jsonrpc":"2.0","id":${JSON.stringify(rpc.id)},"result":"OK"}`)
    const now = nowUs()
    for (const run of rpc.params as Run[]) for (const message of run[3]) this.#count(message, now)
  }

  #deliverOne(message: string): void {
    this.#count(message, nowUs())
  }

  #count(message: string, now: number): void {
    this.recorded?.push(message)
    const seq = seqOf(message)
    if (!(seq >= 0)) {
      this.received++ // not a bench message (tests): no seq, no send time
      return
    }
    if (seq === 0) {
      this.warmups++
      return
    }
    this.received++
    this.lastAt = now
    if (this.spec.room !== undefined) this.#check(seq)
    else if (seq <= this.lastSeq) this.dups++
    else {
      if (seq !== this.lastSeq + 1) this.gaps += seq - this.lastSeq - 1
      this.lastSeq = seq
    }
    this.#host.latency.record(now - sentUsOf(message))
  }

  #check(seq: number): void {
    if (this.#hasSeen(seq)) return void this.dups++
    const byte = seq >> 3
    if (!this.#seen || byte >= this.#seen.length) {
      const grown = new Uint8Array(Math.max(byte + 1, 2 * (this.#seen?.length ?? 64)))
      if (this.#seen) grown.set(this.#seen)
      this.#seen = grown
    }
    this.#seen[byte]! |= 1 << (seq & 7)
    if (seq < this.lastSeq) this.outOfOrder++
    else this.lastSeq = seq
  }

  #hasSeen(seq: number): boolean {
    const byte = this.#seen?.[seq >> 3]
    return byte !== undefined && (byte & (1 << (seq & 7))) !== 0
  }
}
