/**
 * What the consumer needs from an Engine.IO 4 session, whatever its
 * transport: packets in (`0` open, `2` ping, `4` message, `1` close, binary
 * messages), messages out, and one report of how it ended. Browser-safe: no
 * Node module is imported here or by the transports.
 */

export type TransportName = 'websocket' | 'polling'

/** The part of the WebSocket API the consumer uses: the browser's, and the `ws` package's in Node. */
export interface WebSocketLike {
  binaryType: string
  onopen: ((event: unknown) => void) | null
  onmessage: ((event: { readonly data: unknown }) => void) | null
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null
  onerror: ((event: unknown) => void) | null
  send(data: string | Uint8Array): void
  close(code?: number, reason?: string): void
}

export type WebSocketConstructor = new (url: string) => WebSocketLike

/** The part of a fetch body stream's reader the polling transport uses. */
export interface BodyReader {
  read(): Promise<{ readonly done: boolean; readonly value?: Uint8Array }>
  cancel(): Promise<void>
}

/** The part of a fetch Response the polling transport reads. */
export interface FetchResponse {
  readonly status: number
  readonly headers: { get(name: string): string | null }
  /** Read as a stream, so that an answer past maxReceiveBytes is dropped rather than held whole. */
  readonly body: { getReader(): BodyReader } | null
  text(): Promise<string>
}

/** The part of fetch the polling transport uses (typed here so that the declarations need no DOM or Node types). */
export type FetchLike = (
  url: string,
  init?: {
    readonly method?: 'GET' | 'POST'
    readonly body?: string
    readonly headers?: Readonly<Record<string, string>>
    /** An AbortSignal. */
    readonly signal?: unknown
  },
) => Promise<FetchResponse>

/** What a platform provides: the browser's globals, or `ws` and Node's fetch. */
export interface Platform {
  readonly WebSocket: WebSocketConstructor
  readonly fetch: FetchLike
}

/** A handshake the server answered with an error status (polling only: a browser cannot read a refused upgrade). */
export interface Refusal {
  readonly status: number
  readonly message: string
  /** When the server asked the client to come back (503: full or draining), in ms. */
  readonly retryAfterMs: number | undefined
}

/** How a link ended. */
export interface Ending {
  readonly reason: string
  /** Whether the session had opened (an open packet came). */
  readonly wasOpen: boolean
  readonly refusal?: Refusal
  /** The server sent more than maxReceiveBytes at once: a protocol error the user may have to act on. */
  readonly isOversized?: boolean
}

/** A link reports to these, never synchronously from its constructor or start(). */
export interface LinkHandlers {
  /** The session opened (an upgrade probe: the server answered it). */
  opened(open: OpenPacket): void
  message(data: string | Uint8Array): void
  /** Exactly once, unless close() was called first. */
  ended(ending: Ending): void
}

export interface Link {
  readonly transport: TransportName
  start(): void
  send(data: string | Uint8Array): void
  /** Closes from the client; no report follows. */
  close(): void
}

/** The open packet's fields the client uses. */
export interface OpenPacket {
  readonly sid: string
  readonly pingIntervalMs: number
  readonly pingTimeoutMs: number
  /** The transports the server lets this session upgrade to. */
  readonly upgrades: readonly string[]
}

/**
 * Parses the data of an open packet (`0{...}`); undefined if it is not one,
 * or if its pingInterval + pingTimeout is not a timer's delay (above 0, below 2^31 ms).
 */
export function parseOpen(data: string): OpenPacket | undefined {
  try {
    const open = JSON.parse(data) as {
      sid?: unknown
      pingInterval?: unknown
      pingTimeout?: unknown
      upgrades?: unknown
    }
    if (typeof open.sid !== 'string' || typeof open.pingInterval !== 'number') return undefined
    const pingTimeoutMs = typeof open.pingTimeout === 'number' ? open.pingTimeout : 20_000
    // The watchdog's timer: 0 would never fire, and past 2^31 ms or below 0 a timer fires at once.
    const silenceMs = open.pingInterval + pingTimeoutMs
    if (!(open.pingInterval >= 0 && pingTimeoutMs >= 0 && silenceMs > 0 && silenceMs < 2 ** 31))
      return undefined
    const upgrades = Array.isArray(open.upgrades)
      ? open.upgrades.filter(name => typeof name === 'string')
      : []
    return { sid: open.sid, pingIntervalMs: open.pingInterval, pingTimeoutMs, upgrades }
  } catch {
    return undefined // not JSON: the caller ends the link as a protocol error
  }
}

/**
 * The v4 heartbeat seen from the client: the server pings every
 * pingInterval; a session that hears nothing for pingInterval + pingTimeout
 * is dead. One timer per session, refreshed on every packet.
 */
export class Watchdog {
  readonly #onSilence: () => void
  #timer: ReturnType<typeof setTimeout> | undefined
  #ms = 0

  constructor(onSilence: () => void) {
    this.#onSilence = onSilence
  }

  /** Until the open packet: a handshake that hangs (a proxy holding it, say) ends after `ms` too. */
  armForOpen(ms: number): void {
    this.#ms = ms
    this.heard()
  }

  arm(open: OpenPacket): void {
    this.#ms = open.pingIntervalMs + open.pingTimeoutMs
    this.heard()
  }

  heard(): void {
    if (this.#ms === 0) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(this.#onSilence, this.#ms)
  }

  stop(): void {
    clearTimeout(this.#timer)
    this.#ms = 0
  }
}

/** The Engine.IO URL of a transport: `path` on `base`, with EIO=4, the transport and `query`. */
export function engineUrl(
  base: string,
  path: string,
  transport: TransportName,
  query: Readonly<Record<string, string>>,
): string {
  const url = new URL(path, base)
  const isSecure = url.protocol === 'https:' || url.protocol === 'wss:'
  url.protocol = transport === 'websocket' ? (isSecure ? 'wss:' : 'ws:') : isSecure ? 'https:' : 'http:'
  url.searchParams.set('EIO', '4')
  url.searchParams.set('transport', transport)
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value)
  return url.href
}

export function toBase64(bytes: Uint8Array): string {
  let text = ''
  for (let at = 0; at < bytes.length; at += 0x8000)
    text += String.fromCharCode(...bytes.subarray(at, at + 0x8000))
  return btoa(text)
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}
