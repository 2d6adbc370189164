import type { EncodedMessage, OutPacket, Packet } from './packet.js'

export type TransportName = 'polling' | 'websocket'

/**
 * How a transport ends when its session closes:
 *
 * - `flush`: the server closes: queued packets, then the close packet.
 *   Polling without a pending GET keeps them for the next GET (it lingers).
 * - `close`: an error closes: queued packets are dropped, a pending GET gets
 *   the close packet.
 * - `replaced`: a newer session took the id: queued packets are dropped (the
 *   newer session sends them again), then as `flush`: the replaced client,
 *   which may not know yet, polls again at once (docs/consumer-protocol.md §3).
 * - `noop`: the client closed: a pending GET is released with a noop.
 * - `silent`: the transport is gone (aborted GET, closed websocket), or the
 *   engine shuts down: release what is pending, keep nothing.
 */
export type Ending = 'flush' | 'replaced' | 'close' | 'noop' | 'silent'

/** What a session asks of its transport. */
export interface Transport {
  readonly name: TransportName
  /** Sends or queues one packet. */
  write(packet: OutPacket): void
  /** Sends a message encoded once for many sessions. */
  writeEncoded(message: EncodedMessage): void
  /** Ends the transport; true if it lingers to hand the close packet to a later GET. */
  end(ending: Ending): boolean
}

/** What a transport tells its session. Every call names the transport, which may be a probe. */
export interface TransportOwner {
  /** One packet from the client, in order. */
  receive(packet: Packet, from: Transport): void
  /**
   * Counts `bytes` the client sent, before they are decoded, and `packets` (inputBytesPerPacket
   * each): false if they are past its input budget, and the transport must close with TOO_MUCH_INPUT.
   */
  admitsInput(bytes: number, packets: number): boolean
  /**
   * Asked for each POST that carries a close packet: false while that packet may be another
   * client's (one this session replaced), and the POST is dropped whole (and counted).
   */
  takesClose(): boolean
  /** The client broke the protocol or a bound; `reason` is the close reason. */
  fail(from: Transport, reason: string): void
  /** The connection went away (websocket closed, pending GET aborted). */
  lost(from: Transport, reason: string): void
  /** A lingering polling transport handed over its close packet, or gave up waiting. */
  lingered(from: Transport): void
}

/** The close reason of a session that sent past maxInputBytesPerSec. */
export const TOO_MUCH_INPUT = 'too much input'
/** The close reason of a session past maxBackpressureBytes. */
export const TOO_SLOW = 'backpressure'
/** The close reason of a websocket cut while the node's buffered total was past its bound (buffered-bytes.ts). */
export const TOO_SLOW_FOR_NODE = 'node backpressure'
