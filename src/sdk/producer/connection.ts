/**
 * The producer's link to the broker: one TCP connection at a time, the auth
 * call first, answers handed to the producer, and a new connection with
 * backoff when one is lost. Apart from producer.ts, which keeps the calls:
 * what this file decides is when frames may go, not which.
 *
 *   idle ─dial()─▶ connecting ─auth OK─▶ open ─lost─▶ reconnecting ─auth OK─▶ open
 *                     │                                    │
 *                     └──────── 401 / close() ─────────────┴──▶ closed
 */
import { connect as connectTcp, type Socket } from 'node:net'
import type { Tokens } from '../../auth/token.js'
import { encodeBulk, isFramingError, RespDecoder } from '../../producer/resp.js'
import { Backoff } from '../backoff.js'
import { fromRpcError, SDK_ERRORS, SnapperError } from '../errors.js'
import type { ProducerState } from './types.js'

/** An answer from the broker, as parsed. */
export interface Reply {
  readonly id?: unknown
  readonly result?: unknown
  readonly error?: unknown
}

export interface ConnectionSettings {
  readonly host: string
  readonly port: number
  /** The producer id, signed into each connection's auth token with `tokens`... */
  readonly id: string
  readonly tokens: Tokens | undefined
  /** ...or the token given ready-made. */
  readonly token: string | undefined
  /** The producer's frame limit; answers may be larger (the decoder allows 4 times it, at least 4 MiB). */
  readonly maxFrameBytes: number
  readonly reconnectMinMs: number
  readonly reconnectMaxMs: number
}

/** What the connection reports to the producer that holds it. */
export interface ConnectionHandlers {
  /** The state changed (the producer's `state` event). */
  stateChanged(state: ProducerState): void
  /** A fault for the producer's `error` event. */
  error(error: SnapperError): void
  /** The broker accepted the token: write() sends from now on. */
  opened(): void
  /** The broker refused the token (it does not get better by retrying): the producer closes. */
  refused(error: SnapperError): void
  /** The answer to the call `id`. */
  answered(id: number, reply: Reply): void
  /**
   * The broker refused a frame as larger than its maxFrameBytes and closes
   * the connection: it answers every frame before that one first, so the
   * frame is the oldest call still unanswered.
   */
  tooLarge(error: SnapperError): void
  /** The connection was lost; a new one is dialed after a backoff unless close() is called now. */
  lost(): void
}

const AUTH_ID = 'auth'
/** Life of the auth token signed for each connection, in seconds. */
const AUTH_TOKEN_TTL_SEC = 3600
/**
 * A connection that lasted this long, in ms, resets the reconnect backoff: one
 * that a broker accepts and drops at once (a sick broker, one closing on a
 * frame) must not bring its producers back at the shortest delay for ever.
 * The consumer's rule too (consumer.ts, STABLE_SESSION_MS).
 */
const STABLE_CONNECTION_MS = 10_000

export class Connection {
  readonly #settings: ConnectionSettings
  readonly #handlers: ConnectionHandlers
  readonly #backoff: Backoff
  #state: ProducerState = 'idle'
  #socket: Socket | undefined
  #isAuthenticated = false
  /** When the broker accepted this connection's token (Date.now()). */
  #openedAtMs: number | undefined
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined

  constructor(settings: ConnectionSettings, handlers: ConnectionHandlers) {
    this.#settings = settings
    this.#handlers = handlers
    this.#backoff = new Backoff(settings.reconnectMinMs, settings.reconnectMaxMs)
  }

  get state(): ProducerState {
    return this.#state
  }

  /** Connected and authenticated: write() sends. */
  get isOpen(): boolean {
    return this.#socket !== undefined && this.#isAuthenticated
  }

  /** Sends frames; only while isOpen. */
  write(frames: string): void {
    this.#socket?.write(frames)
  }

  /** Connects (again); the state says which. */
  dial(): void {
    this.#reconnectTimer = undefined
    if (this.#isClosed()) return
    this.#setState(this.#state === 'idle' || this.#state === 'connecting' ? 'connecting' : 'reconnecting')
    const { host, port, maxFrameBytes } = this.#settings
    const socket = connectTcp({ host, port })
    const decoder = new RespDecoder(Math.max(maxFrameBytes, 1 << 20) * 4)
    this.#socket = socket
    this.#isAuthenticated = false
    socket.setNoDelay(true)
    socket.setKeepAlive(true)
    socket.on('connect', () => {
      const { tokens, id, token } = this.#settings
      const authToken = tokens ? tokens.sign({ id }, AUTH_TOKEN_TTL_SEC) : token
      socket.write(
        encodeBulk(JSON.stringify({ jsonrpc: '2.0', id: AUTH_ID, method: 'auth', params: [authToken] })),
      )
    })
    socket.on('data', chunk => this.#onData(socket, decoder, chunk))
    socket.on('error', err => {
      this.#handlers.error(
        new SnapperError(SDK_ERRORS.CONNECTION, err.message, { isTemporary: true }, { cause: err }),
      )
    })
    socket.on('close', () => this.#onClose(socket))
  }

  /** For good: no reconnect; the socket ends, and is destroyed if it has not within 5 s. */
  close(): void {
    this.#setState('closed')
    clearTimeout(this.#reconnectTimer)
    const socket = this.#socket
    this.#socket = undefined
    socket?.end()
    socket?.setTimeout(5000, () => socket.destroy())
  }

  /** A method, not `#state === 'closed'`: a handler may close the connection between two checks. */
  #isClosed(): boolean {
    return this.#state === 'closed'
  }

  #setState(state: ProducerState): void {
    if (this.#state === state) return
    this.#state = state
    this.#handlers.stateChanged(state)
  }

  #onData(socket: Socket, decoder: RespDecoder, chunk: Buffer): void {
    if (socket !== this.#socket) return
    decoder.push(chunk)
    for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
      if (isFramingError(frame)) {
        this.#fail(
          socket,
          new SnapperError(SDK_ERRORS.PROTOCOL, `bad frame from the broker: ${frame.detail}`),
        )
        return
      }
      let reply: unknown
      try {
        reply = JSON.parse(frame.toString('utf8'))
      } catch {
        this.#fail(socket, new SnapperError(SDK_ERRORS.PROTOCOL, 'a frame from the broker is not JSON'))
        return
      }
      if (!isReply(reply)) {
        this.#fail(
          socket,
          new SnapperError(SDK_ERRORS.PROTOCOL, 'a frame from the broker is not a JSON object'),
        )
        return
      }
      if (reply.id === AUTH_ID) this.#onAuth(reply)
      else if (typeof reply.id === 'number') this.#handlers.answered(reply.id, reply)
      else if (reply.error !== undefined) {
        // id null: the broker refused something it could not tie to a call (a drain before auth, say).
        const error = fromRpcError(reply.error)
        this.#handlers.error(error)
        if (error.code === 401) this.#handlers.refused(error)
        else if (error.reason === 'FRAME_TOO_LARGE') this.#handlers.tooLarge(error)
      }
      if (socket !== this.#socket) return
    }
  }

  #onAuth(reply: Reply): void {
    if (reply.error !== undefined) {
      // A refused token does not get better by retrying: the producer stops, every call fails with it.
      const error = fromRpcError(reply.error)
      this.#handlers.error(error)
      this.#handlers.refused(error)
      return
    }
    this.#isAuthenticated = true
    this.#openedAtMs = Date.now()
    this.#setState('open')
    this.#handlers.opened()
  }

  /** A broken stream: drop this connection; the next one resends. */
  #fail(socket: Socket, error: SnapperError): void {
    this.#handlers.error(error)
    socket.destroy()
  }

  #onClose(socket: Socket): void {
    if (socket !== this.#socket) return
    this.#socket = undefined
    this.#isAuthenticated = false
    if (this.#openedAtMs !== undefined && Date.now() - this.#openedAtMs >= STABLE_CONNECTION_MS)
      this.#backoff.reset()
    this.#openedAtMs = undefined
    if (this.#isClosed()) return
    this.#handlers.lost() // the producer may close() here: it was closing, and nothing is left to send
    if (this.#isClosed()) return
    this.#setState('reconnecting')
    this.#reconnectTimer = setTimeout(() => this.dial(), this.#backoff.next())
  }
}

/** Every answer is a JSON object; anything else (null, an array, a number) is not one the broker sends. */
function isReply(value: unknown): value is Reply {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
