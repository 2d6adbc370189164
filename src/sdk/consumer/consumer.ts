/**
 * The consumer SDK, for browsers and Node: one Engine.IO 4 session at a time
 * to a Snapper gateway, in the delivery format it asks for with `codec=`,
 * kept up by reconnecting.
 *
 *   idle ─connect()─▶ connecting ─open─▶ open ─lost─▶ reconnecting ─open─▶ open
 *                          │                               │
 *                          └── refused (400/403), close() ─┴──▶ closed
 *
 * Each attempt tries the transports in order (websocket, then polling): a
 * websocket that does not open is followed at once by a polling handshake,
 * whose HTTP answer also says why a handshake was refused. A session open on
 * polling whose server offers the upgrade probes a websocket (at once, then
 * after 30 s, doubling to 8 min) and moves to it when the probe is answered:
 * the Engine.IO upgrade, the same session. Between attempts the delay is the
 * server's when it gave one (a `reconnect` notice before a drain,
 * `retryAfterMs` on a 503; at most reconnectMaxMs, and after a refusal, or
 * a notice that follows a failure, no less than the backoff), else a
 * jittered exponential backoff.
 *
 * Deliveries are acknowledged here, after the listeners ran. A message at or
 * before the last one this consumer handed out of its room is dropped, so
 * that a batch sent again reaches the application once: delivered.ts keeps
 * those positions.
 */
import { checkedCount, checkedMs } from '../options.js'
import { Backoff, jittered } from '../backoff.js'
import { Emitter } from '../emitter.js'
import { SDK_ERRORS, SnapperError } from '../errors.js'
import { asRun, CODECS, decodeFrame, encodeAck, type Codec } from './codec.js'
import { DeliveredPositions } from './delivered.js'
import {
  engineUrl,
  type Ending,
  type Link,
  type OpenPacket,
  type Platform,
  type TransportName,
} from './link.js'
import { PollingLink } from './polling-link.js'
import { WebSocketLink } from './websocket-link.js'

export interface ConsumerOptions {
  /** A consumer token (`{userId, exp, source?}` signed with a broker secret: `producer.signConsumerToken`). */
  readonly token: string
  /** Delivery format: JSON text, or msgpack binary frames (smaller, no escaping). @default 'json' */
  readonly codec?: Codec
  /** The gateway's Engine.IO path, with or without its trailing slash. @default '/websocket/' */
  readonly path?: string
  /** Transports to try, in order, on every attempt. @default ['websocket', 'polling'] */
  readonly transports?: readonly TransportName[]
  /** First reconnect delay, in ms: drawn in [reconnectMinMs / 2, reconnectMinMs], the bounds doubling at each failure. @default 500 */
  readonly reconnectMinMs?: number
  /** Longest reconnect delay, in ms, also when the server asked for longer. @default 30000 */
  readonly reconnectMaxMs?: number
  /**
   * Longest wait for a session's open packet, per transport tried, in ms: a
   * handshake that hangs (a proxy holding it) ends, and the next transport or
   * attempt follows. @default 20000
   */
  readonly openTimeoutMs?: number
  /**
   * Largest poll answer (and, in Node, websocket message) read, in bytes:
   * one larger is not held in memory; the session ends with a PROTOCOL
   * `error` event, and the consumer reconnects. @default 16777216 (16 MiB)
   */
  readonly maxReceiveBytes?: number
  /**
   * How many rooms the consumer remembers its last message of, to drop what
   * the broker sends again: past it, the room delivered to least recently is
   * forgotten, and a message of that room sent again is handed out again.
   * @default 10000
   */
  readonly maxRoomsRemembered?: number
}

/** maxReceiveBytes's default: far above what a gateway sends at once with its defaults (README "The SDK"). */
export const DEFAULT_MAX_RECEIVE_BYTES = 16 << 20

/**
 * maxRoomsRemembered's default: far more rooms than one consumer gets between
 * two cursor flushes of its node (what a crash sends again), in about 1.3 MB
 * (README "The SDK").
 */
export const DEFAULT_MAX_ROOMS_REMEMBERED = 10_000

/** Where a message comes from. */
export interface MessageMeta {
  readonly room: string
  /** Its sequence number in the room: seq + 1 follows seq. */
  readonly seq: number
  /** When the broker stored it (Redis time, never going back within a room), in ms since the epoch. */
  readonly storedAtMs: number
}

/** Messages of a room that this consumer will never get: the room log no longer had them. */
export interface Gap {
  readonly room: string
  /** How many, when the broker knows. */
  readonly missed: number | null
}

export type ConsumerState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface StateDetails {
  /** The transport of the open session. */
  readonly transport?: TransportName
  /** Why the last session or attempt ended. */
  readonly reason?: string
  /** When the next attempt starts, in ms from now. */
  readonly retryInMs?: number
  /** Why the consumer closed, when it was not close(). */
  readonly error?: SnapperError
}

export interface ConsumerEvents {
  message: [message: string, meta: MessageMeta]
  gap: [gap: Gap]
  state: [state: ConsumerState, details: StateDetails]
  /** A listener threw (LISTENER), or the broker sent something unreadable (PROTOCOL); the consumer goes on. */
  error: [error: SnapperError]
}

/** Handshake refusals that no retry can fix: a bad token (403), a bad request (400). */
const isFatal = (status: number): boolean => status === 400 || status === 403

/** After a failed upgrade probe, the next one waits this long, doubling up to UPGRADE_RETRY_MAX_MS. */
const UPGRADE_RETRY_MS = 30_000
/**
 * A session that lasted this long, in ms, resets the reconnect backoff: one
 * that a server opens and breaks at once (a sick node) must not bring its
 * clients back at the shortest delay for ever.
 */
const STABLE_SESSION_MS = 10_000
const UPGRADE_RETRY_MAX_MS = 8 * 60_000

const BAD_RUN = 'a delivery run is not [room, storedAtMs, seq, messages]'

export class ConsumerCore extends Emitter<ConsumerEvents> {
  readonly #url: string
  readonly #token: string
  readonly #codec: Codec
  readonly #path: string
  readonly #transports: readonly TransportName[]
  readonly #openTimeoutMs: number
  readonly #maxReceiveBytes: number
  readonly #platform: Platform
  readonly #backoff: Backoff
  /** Per room, the last message handed out: what #deliver drops when it comes again. */
  readonly #delivered: DeliveredPositions
  #state: ConsumerState = 'idle'
  #id: string | undefined
  #link: Link | undefined
  /** When the session last opened (Date.now()), until it ended. */
  #openedAtMs: number | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  /** A polling session's upgrade: the probe under way, or the timer of the next one. */
  #probe: WebSocketLink | undefined
  #probeTimer: ReturnType<typeof setTimeout> | undefined
  /** The server's `reconnect` notice: the next attempt waits this long. */
  #retryAfterMs: number | undefined
  #connected: Promise<string> | undefined
  #settleConnected: { resolve: (id: string) => void; reject: (error: SnapperError) => void } | undefined

  constructor(url: string, options: ConsumerOptions, platform: Platform) {
    super()
    if (typeof options.token !== 'string' || options.token === '')
      throw new TypeError('Consumer: `token` is required')
    const codec = options.codec ?? 'json'
    if (!CODECS.includes(codec)) throw new TypeError(`Consumer: codec must be 'json' or 'msgpack'`)
    const transports = options.transports ?? ['websocket', 'polling']
    if (transports.length === 0 || transports.some(name => name !== 'websocket' && name !== 'polling'))
      throw new TypeError(`Consumer: transports must be 'websocket' and/or 'polling'`)
    const openTimeoutMs = checkedMs('Consumer', 'openTimeoutMs', options.openTimeoutMs ?? 20_000)
    const maxReceiveBytes = options.maxReceiveBytes ?? DEFAULT_MAX_RECEIVE_BYTES
    if (!(Number.isSafeInteger(maxReceiveBytes) && maxReceiveBytes > 0))
      throw new TypeError('Consumer: maxReceiveBytes must be a whole number of bytes above 0')
    const maxRoomsRemembered = checkedCount(
      'Consumer',
      'maxRoomsRemembered',
      options.maxRoomsRemembered ?? DEFAULT_MAX_ROOMS_REMEMBERED,
    )
    new URL(url) // throws a TypeError now for a URL that cannot work
    this.#url = url
    this.#token = options.token
    this.#codec = codec
    const path = options.path ?? '/websocket/'
    // The gateway serves what is under `<path>/`: `/websocket` itself is a 404. engine.io-client adds the slash too.
    this.#path = path.endsWith('/') ? path : `${path}/`
    this.#transports = transports
    this.#openTimeoutMs = openTimeoutMs
    this.#maxReceiveBytes = maxReceiveBytes
    this.#delivered = new DeliveredPositions(maxRoomsRemembered)
    this.#platform = platform
    this.#backoff = new Backoff(
      checkedMs('Consumer', 'reconnectMinMs', options.reconnectMinMs ?? 500),
      checkedMs('Consumer', 'reconnectMaxMs', options.reconnectMaxMs ?? 30_000),
    )
  }

  /** The consumer id (the Engine.IO sid), once a session opened: what a producer subscribes to rooms. */
  get id(): string | undefined {
    return this.#id
  }

  get state(): ConsumerState {
    return this.#state
  }

  /** The transport of the open session. */
  get transport(): TransportName | undefined {
    return this.#state === 'open' ? this.#link?.transport : undefined
  }

  /**
   * Opens the session. Resolves with the consumer id once it is open (what
   * your server subscribes to rooms; also `id` from then on); rejects with a
   * SnapperError if the gateway refused the handshake for good (403: the
   * token; 400: a bad request) or close() came first. Unreachable gateways
   * and full or draining nodes are retried meanwhile (see the `state` event).
   */
  connect(): Promise<string> {
    if (this.#state === 'closed')
      return Promise.reject(new SnapperError(SDK_ERRORS.CLOSED, 'the consumer is closed'))
    if (this.#connected) return this.#connected
    this.#connected = new Promise((resolve, reject) => {
      this.#settleConnected = { resolve, reject }
    })
    this.#connected.catch(() => {}) // the caller of connect() gets the rejection
    this.#setState('connecting', {})
    this.#open(0)
    return this.#connected
  }

  /** Closes the session and stops reconnecting. */
  close(): void {
    if (this.#state === 'closed') return
    this.#stopUpgrade()
    this.#link?.close()
    this.#link = undefined
    this.#finish(new SnapperError(SDK_ERRORS.CLOSED, 'the consumer is closed'), false)
  }

  #setState(state: ConsumerState, details: StateDetails): void {
    this.#state = state
    this.emit('state', state, details)
  }

  /** Tries the transport at `index`; the next one if it does not open. */
  #open(index: number): void {
    this.#timer = undefined
    const transport = this.#transports[index]!
    const query = { token: this.#token, codec: this.#codec }
    const url = engineUrl(this.#url, this.#path, transport, query)
    const handlers = {
      opened: (open: OpenPacket): void => {
        if (this.#link !== link) return
        this.#id = open.sid
        this.#openedAtMs = Date.now()
        this.#setState('open', { transport })
        this.#settleConnected?.resolve(open.sid)
        this.#settleConnected = undefined
        const canUpgrade = this.#transports.includes('websocket') && open.upgrades.includes('websocket')
        if (link instanceof PollingLink && canUpgrade) this.#upgrade(link, open, 0)
      },
      message: (data: string | Uint8Array): void => {
        if (this.#link === link) this.#receive(link, data)
      },
      ended: (ending: Ending): void => {
        if (this.#link !== link) return
        this.#link = undefined
        this.#stopUpgrade()
        this.#ended(index, ending)
      },
    }
    const link: Link =
      transport === 'websocket'
        ? new WebSocketLink(url, this.#platform, handlers, this.#openTimeoutMs)
        : new PollingLink(url, this.#platform, handlers, this.#openTimeoutMs, this.#maxReceiveBytes)
    this.#link = link
    link.start()
  }

  /**
   * Probes a websocket for the polling session `session` (after a delay that
   * grows with `attempt`). Answered: the polling hands over (its held GET and
   * POSTs come back), and the websocket takes the session over; else the
   * session stays on polling and probes again later.
   */
  #upgrade(polling: PollingLink, session: OpenPacket, attempt: number): void {
    const delayMs = attempt === 0 ? 0 : Math.min(UPGRADE_RETRY_MS * 2 ** (attempt - 1), UPGRADE_RETRY_MAX_MS)
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined
      if (this.#link !== polling) return
      const query = { token: this.#token, codec: this.#codec, sid: session.sid }
      const url = engineUrl(this.#url, this.#path, 'websocket', query)
      const probe = new WebSocketLink(
        url,
        this.#platform,
        {
          opened: () => {
            void polling.handOver().then(isHandedOver => {
              if (this.#probe !== probe) return // it ended meanwhile, and its report decided
              this.#probe = undefined
              if (!isHandedOver || this.#link !== polling) return probe.close()
              this.#link = probe
              probe.takeOver()
              this.#setState('open', { transport: 'websocket' })
            })
          },
          message: data => {
            if (this.#link === probe) this.#receive(probe, data)
          },
          ended: ending => {
            if (this.#link === probe) {
              this.#link = undefined
              return this.#ended(this.#transports.length, ending)
            }
            if (this.#probe !== probe) return
            this.#probe = undefined
            if (this.#link !== polling) return
            if (polling.resume()) return this.#upgrade(polling, session, attempt + 1)
            // The polling had handed the session over already: it has no transport left.
            this.#link = undefined
            this.#ended(this.#transports.length, {
              reason: `upgrade failed: ${ending.reason}`,
              wasOpen: true,
            })
          },
        },
        this.#openTimeoutMs,
        session,
      )
      this.#probe = probe
      probe.start()
    }, delayMs)
  }

  #stopUpgrade(): void {
    clearTimeout(this.#probeTimer)
    this.#probeTimer = undefined
    this.#probe?.close()
    this.#probe = undefined
  }

  #ended(index: number, ending: Ending): void {
    const { refusal, reason } = ending
    if (ending.isOversized) {
      // Raising maxReceiveBytes (or fixing what answers) is the user's to do: the next session may get it again.
      this.emit('error', new SnapperError(SDK_ERRORS.PROTOCOL, reason))
      if (this.#state === 'closed') return
    }
    if (!ending.wasOpen && !refusal && index + 1 < this.#transports.length) return this.#open(index + 1)
    if (refusal && isFatal(refusal.status)) {
      const error = new SnapperError(refusal.status, `handshake refused: ${refusal.message}`, {
        reason: refusal.message,
      })
      return this.#finish(error, true)
    }
    const isStable = this.#openedAtMs !== undefined && Date.now() - this.#openedAtMs >= STABLE_SESSION_MS
    if (isStable) this.#backoff.reset()
    this.#openedAtMs = undefined
    const noticeMs = this.#retryAfterMs
    this.#retryAfterMs = undefined
    const askedMs = refusal?.retryAfterMs ?? noticeMs
    // The server's delay, within bounds: past 2^31 ms a timer fires at once.
    let retryInMs: number
    if (noticeMs !== undefined && this.#backoff.isAtFirst) {
      // A drain's notice, with no failure since the last session that lasted: the server's word, and
      // no failure itself, so the next failure waits as long as without it. Ending a shorter session
      // it does count as one, so that a server ending each session with a notice of 0 is not met with
      // reconnects at once for ever: the next notice waits the backoff at least.
      if (!isStable) this.#backoff.next()
      retryInMs = Math.min(this.#backoff.maxMs, jittered(noticeMs))
    } else if (askedMs === undefined) retryInMs = this.#backoff.next()
    // No less than the backoff: a refusal (or notice) saying 0, from a broken proxy, must not turn
    // into a handshake loop.
    else retryInMs = Math.min(this.#backoff.maxMs, Math.max(jittered(askedMs), this.#backoff.next()))
    this.#setState('reconnecting', { reason, retryInMs })
    this.#timer = setTimeout(() => this.#open(0), retryInMs)
  }

  #finish(error: SnapperError, isFailure: boolean): void {
    clearTimeout(this.#timer)
    this.#settleConnected?.reject(error)
    this.#settleConnected = undefined
    this.#setState('closed', isFailure ? { error, reason: error.message } : { reason: 'closed' })
  }

  #receive(link: Link, data: string | Uint8Array): void {
    let frame: { id?: unknown; method?: unknown; params?: unknown }
    try {
      frame = decodeFrame(data) as typeof frame
    } catch (err) {
      this.emit('error', new SnapperError(SDK_ERRORS.PROTOCOL, 'undecodable frame', {}, { cause: err }))
      return
    }
    if (typeof frame !== 'object' || frame === null) return
    const { id, method, params } = frame
    if (!Array.isArray(params)) return
    if (method === 'deliver' && (typeof id === 'string' || typeof id === 'number')) {
      this.#deliver(params)
      // After the listeners: one that closed the consumer leaves the batch unacknowledged, to come again.
      if (this.#link === link) link.send(encodeAck(this.#codec, id))
    } else if (method === 'gap') {
      for (const gap of params as { room?: unknown; missed?: unknown }[])
        if (typeof gap?.room === 'string')
          this.emit('gap', { room: gap.room, missed: typeof gap.missed === 'number' ? gap.missed : null })
    } else if (method === 'reconnect') {
      const retryAfterMs = (params[0] as { retryAfterMs?: unknown } | undefined)?.retryAfterMs
      if (typeof retryAfterMs === 'number' && retryAfterMs >= 0) this.#retryAfterMs = retryAfterMs
    }
  }

  #deliver(runs: readonly unknown[]): void {
    for (const value of runs) {
      const run = asRun(value)
      if (!run) {
        // Skipped, and acknowledged with the rest: sent again, it would be as unreadable.
        this.emit('error', new SnapperError(SDK_ERRORS.PROTOCOL, BAD_RUN))
        if (this.#state === 'closed') return
        continue
      }
      const [room, storedAtMs, seq, messages] = run
      if (messages.length === 0) continue
      const position = this.#delivered.positionOf(room)
      for (let i = 0; i < messages.length; i++) {
        const at = seq + i
        if (!position.advanceTo(storedAtMs, at)) continue // handed out already
        this.emit('message', messages[i]!, { room, seq: at, storedAtMs })
        if (this.#state === 'closed') return
      }
    }
  }
}
