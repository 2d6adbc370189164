import { callGuarded, guard } from '../../guard.js'
import type { Logger } from '../../log.js'
import type { TokenBucket } from '../../rate.js'
import type { EngineOptions, Session } from './api.js'
import type { Heartbeat, HeartbeatOwner, Heartbeats } from './heartbeat.js'
import {
  type EncodedMessage,
  MESSAGE,
  OPEN,
  PING,
  PONG,
  PROBE,
  type Packet,
  type Revision,
} from './packet.js'
import { PollingTransport } from './polling.js'
import type { Ending, Transport, TransportName, TransportOwner } from './transport.js'
import type { WebSocketTransport } from './websocket.js'

/** What a session needs from the engine that owns it. */
export interface SessionHost<T> {
  readonly options: EngineOptions
  /** Starts the session's heartbeat: the engine's, whose v4 timers serve all of its sessions. */
  readonly heartbeats: Heartbeats
  /** Where a timer of the session that throws (a bug) is logged. */
  readonly log: Logger
  /** Hands one message to the application. */
  message(session: EngineSession<T>, data: string | Buffer): void
  /** The session closed; it may linger for a last GET; `isReplaced` skips the close handler. */
  ended(session: EngineSession<T>, reason: string, lingers: boolean, isReplaced: boolean): void
  /** A POST with a close packet was dropped as the replaced polling client's (followsPollingClient). */
  droppedReplacedClose(): void
  /** A lingering session is done. */
  forgotten(session: EngineSession<T>): void
}

/** Noops to a held GET during an upgrade, this often (engine.io's value; docs/consumer-protocol.md §7). */
const NUDGE_INTERVAL_MS = 100

/**
 * The session state machine (docs/consumer-protocol.md §3, §6, §7, §8):
 *
 *   polling ──probe opens──▶ probing ──`2probe`: `3probe`, noop the GET every 100 ms
 *      ▲                       │  └──`5`──▶ websocket (queue flushed in order, heartbeat re-armed)
 *      └─ timeout / other packet / probe closed: the probe socket closes, polling goes on
 *
 *   any state ──close()/timeout/error──▶ closed (once; the close handler runs once)
 *
 * The transports report to the session (`TransportOwner`), naming themselves,
 * so a late report from a probe or a replaced transport is told apart.
 */
export class EngineSession<T> implements Session<T>, TransportOwner, HeartbeatOwner {
  readonly id: string
  readonly protocol: Revision
  readonly data: T
  readonly #host: SessionHost<T>
  readonly #heartbeat: Heartbeat
  #transport: PollingTransport | WebSocketTransport
  #probe: WebSocketTransport | undefined
  #upgradeTimer: NodeJS.Timeout | undefined
  #nudgeTimer: NodeJS.Timeout | undefined
  /** What the client may still send (maxInputBytesPerSec), shared by the sessions of its key; undefined: no limit. */
  readonly #input: TokenBucket | undefined
  /** Until then (epoch ms) a close packet by POST may be the replaced polling client's (followsPollingClient). */
  #replacedClientUntilMs = 0
  #isOpen = true

  constructor(
    host: SessionHost<T>,
    id: string,
    protocol: Revision,
    data: T,
    createTransport: (owner: TransportOwner) => PollingTransport | WebSocketTransport,
    /** The input budget (InputBudgets) this session draws on; undefined: no limit. */
    input?: TokenBucket,
  ) {
    this.#host = host
    this.id = id
    this.protocol = protocol
    this.data = data
    this.#input = input
    const { options } = host
    this.#transport = createTransport(this)
    this.#transport.write(
      OPEN +
        JSON.stringify({
          sid: id,
          upgrades: this.#transport.name === 'polling' ? ['websocket'] : [],
          pingInterval: options.pingIntervalMs,
          pingTimeout: options.pingTimeoutMs,
          maxPayload: options.maxPayloadBytes,
        }),
    )
    this.#heartbeat = host.heartbeats.start(protocol, this)
  }

  // The heartbeat and upgrade timers are called by the event loop: a throw closes this session only.
  pingDue(): void {
    callGuarded(
      this.#host.log,
      'engine.io ping',
      this,
      EngineSession.#writePing,
      EngineSession.#failInternally,
    )
  }

  pingTimedOut(): void {
    callGuarded(
      this.#host.log,
      'engine.io ping timeout',
      this,
      EngineSession.#endForPingTimeout,
      EngineSession.#failInternally,
    )
  }

  static #writePing(session: EngineSession<unknown>): void {
    session.#transport.write(PING)
  }

  static #endForPingTimeout(session: EngineSession<unknown>): void {
    session.#end('ping timeout', 'close')
  }

  /** A timer of this session threw (a bug, logged by guard): it ends, the others go on. */
  static #failInternally(session: EngineSession<unknown>): void {
    session.#end('internal error', 'close')
  }

  get transport(): TransportName {
    return this.#transport.name
  }

  get isOpen(): boolean {
    return this.#isOpen
  }

  /** The transport of polling requests, while the session polls. */
  get polling(): PollingTransport | undefined {
    return this.#transport instanceof PollingTransport ? this.#transport : undefined
  }

  /** True while a probe websocket is open and the session may still switch. */
  get isUpgrading(): boolean {
    return this.#probe !== undefined
  }

  send(text: string): void {
    if (this.#isOpen) this.#transport.write(MESSAGE + text)
  }

  sendEncoded(message: EncodedMessage): void {
    if (this.#isOpen) this.#transport.writeEncoded(message)
  }

  sendBinary(data: Buffer): void {
    if (this.#isOpen) this.#transport.write(data)
  }

  close(reason = 'forced close'): void {
    this.#end(reason, 'flush')
  }

  /**
   * A newer session took this id: end it at once, without the close handler.
   * Its queue is dropped; on polling, the close packet waits for the client's next GET.
   */
  replace(): void {
    this.#end('replaced', 'replaced', true)
  }

  /**
   * This session took the id of a polling session, whose client may not know
   * yet and sends what it had to with this very sid (docs/consumer-protocol.md §3):
   * for `pingTimeoutMs`, a POST carrying a close packet is taken as that client's.
   */
  followsPollingClient(): void {
    this.#replacedClientUntilMs = Date.now() + this.#host.options.pingTimeoutMs
  }

  takesClose(): boolean {
    if (this.#replacedClientUntilMs === 0 || Date.now() >= this.#replacedClientUntilMs) return true
    this.#host.droppedReplacedClose()
    return false
  }

  /** A probe websocket opened for this session; false if it must be closed at once. */
  probe(socket: WebSocketTransport): boolean {
    if (!this.#isOpen || this.#probe !== undefined || this.polling === undefined) return false
    this.#probe = socket.bind(this)
    // Made here, not with the session: most sessions never upgrade, and each holds its closures.
    const dropProbe = guard(
      this.#host.log,
      'engine.io upgrade timeout',
      () => this.#dropProbe(),
      () => EngineSession.#failInternally(this),
    )
    this.#upgradeTimer = setTimeout(dropProbe, this.#host.options.upgradeTimeoutMs)
    return true
  }

  admitsInput(bytes: number, packets: number): boolean {
    return this.#input?.take(bytes + packets * (this.#host.options.inputBytesPerPacket ?? 0)) ?? true
  }

  receive(packet: Packet, from: Transport): void {
    if (!this.#isOpen) return
    if (from === this.#probe) {
      this.#receiveProbe(packet, this.#probe)
      return
    }
    this.#heartbeat.received()
    switch (packet.type) {
      case 'message':
        this.#host.message(this, packet.data)
        break
      case 'ping':
        // v3 answers every ping, `2probe` on polling included, with a bare `3` (docs/consumer-protocol.md §6).
        if (this.protocol === 3) this.#transport.write(PONG)
        else this.#end('invalid heartbeat direction', 'close')
        break
      case 'pong':
        if (!this.#heartbeat.pong()) this.#end('invalid heartbeat direction', 'close')
        break
      case 'close':
        this.#end('transport close', 'noop')
        break
      default:
      // open, upgrade and noop mean nothing on the transport in use; engine.io ignores them too.
    }
  }

  #receiveProbe(packet: Packet, probe: WebSocketTransport): void {
    if (packet.type === 'ping' && packet.data === PROBE) {
      probe.write(PONG + PROBE)
      const nudge = guard(
        this.#host.log,
        'engine.io upgrade nudge',
        () => this.polling?.nudge(),
        () => EngineSession.#failInternally(this),
      )
      nudge()
      clearInterval(this.#nudgeTimer)
      this.#nudgeTimer = setInterval(nudge, NUDGE_INTERVAL_MS)
    } else if (packet.type === 'upgrade') this.#switchTo(probe)
    else this.#dropProbe() // engine.io closes a probe that sends anything else
  }

  #switchTo(probe: WebSocketTransport): void {
    const polling = this.polling
    this.#clearUpgrade()
    if (polling === undefined) return
    this.#transport = probe
    probe.writeAll(polling.handOver())
    this.#heartbeat.rearm()
  }

  #clearUpgrade(): void {
    this.#probe = undefined
    clearTimeout(this.#upgradeTimer)
    clearInterval(this.#nudgeTimer)
    this.#upgradeTimer = this.#nudgeTimer = undefined
  }

  /** Closes the probe socket only; the session goes on polling. */
  #dropProbe(): void {
    const probe = this.#probe
    this.#clearUpgrade()
    probe?.end()
  }

  fail(from: Transport, reason: string): void {
    if (from === this.#transport) this.#end(reason, 'close')
  }

  lost(from: Transport, reason: string): void {
    if (from === this.#probe) this.#clearUpgrade()
    else if (from === this.#transport) this.#end(reason, 'silent')
  }

  lingered(): void {
    this.#host.forgotten(this)
  }

  /** The engine shuts down: flush what is queued and the close packet, linger for nobody. */
  shutdown(): void {
    this.#end('server shutdown', 'flush')
    this.polling?.stopLingering()
  }

  #end(reason: string, ending: Ending, isReplaced = false): void {
    if (!this.#isOpen) return
    this.#isOpen = false
    this.#heartbeat.stop()
    this.#dropProbe()
    const lingers = this.#transport.end(ending)
    this.#host.ended(this, reason, lingers, isReplaced)
  }
}
