import type { HttpRequest, HttpResponse } from 'uWebSockets.js'
import type { Logger } from '../../log.js'
import type { Revision } from './packet.js'

/**
 * Engine.IO's numbered HTTP errors (docs/consumer-protocol.md §9): protocol constants, so they
 * live at this boundary rather than in the broker's own error table. Clients
 * never read these bodies; only the status (polling) or the missing 101
 * (websocket) matters to them, but the bytes match engine.io for operators.
 */
export const ENGINE_ERRORS = {
  UNKNOWN_TRANSPORT: { status: 400, code: 0, message: 'Transport unknown' },
  UNKNOWN_SID: { status: 400, code: 1, message: 'Session ID unknown' },
  BAD_HANDSHAKE_METHOD: { status: 400, code: 2, message: 'Bad handshake method' },
  BAD_REQUEST: { status: 400, code: 3, message: 'Bad request' },
  FORBIDDEN: { status: 403, code: 4, message: 'Forbidden' },
  UNSUPPORTED_PROTOCOL_VERSION: { status: 400, code: 5, message: 'Unsupported protocol version' },
  /** Ours: past maxSessions. A 503 tells load balancers and operators "retry elsewhere". */
  TOO_MANY_SESSIONS: { status: 503, code: 3, message: 'Too many sessions' },
  /** Ours: past maxHandshakesPerAddressPerSec; clients reconnect after their back-off. */
  TOO_MANY_HANDSHAKES: { status: 429, code: 3, message: 'Too many handshakes from this address' },
  /** Ours: after Engine.close(). */
  SHUTTING_DOWN: { status: 503, code: 3, message: 'Shutting down' },
} as const

/** A refusal as sent: the JSON body on polling, the raw status and message on an upgrade. */
export interface Refusal {
  readonly status: number
  readonly code: number
  readonly message: string
  /** When to come back, in ms: a Retry-After header (seconds, rounded up) and, on polling, a body field. */
  readonly retryAfterMs?: number
}

const STATUS_LINES: Readonly<Record<number, string>> = {
  200: '200 OK',
  204: '204 No Content',
  400: '400 Bad Request',
  403: '403 Forbidden',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
}

export function statusLine(status: number): string {
  return STATUS_LINES[status] ?? `${status} Error`
}

/** What the engine reads from a request, copied out before the uWS callback returns. */
export interface RequestInfo {
  /** Lower-case. */
  readonly method: string
  readonly rawQuery: string
  readonly origin: string
  readonly contentType: string
  /** Declared Content-Length, or -1. */
  readonly contentLength: number
  readonly acceptsGzip: boolean
  /** Access-Control-Request-Headers of a preflight. */
  readonly requestedHeaders: string
}

export function readRequest(req: HttpRequest): RequestInfo {
  const contentLength = req.getHeader('content-length')
  return {
    method: req.getMethod(),
    // uWS returns undefined, not '', when the URL has no query.
    rawQuery: (req.getQuery() as string | undefined) ?? '',
    origin: req.getHeader('origin'),
    contentType: req.getHeader('content-type'),
    contentLength: /^[0-9]{1,15}$/.test(contentLength) ? Number(contentLength) : -1,
    acceptsGzip: /\bgzip\b/.test(req.getHeader('accept-encoding')),
    requestedHeaders: req.getHeader('access-control-request-headers'),
  }
}

/** `EIO`: 3 or 4; anything else, or none, is unsupported (docs/consumer-protocol.md §1). */
export function revisionOf(eio: string | null): Revision | undefined {
  return eio === '3' ? 3 : eio === '4' ? 4 : undefined
}

/** `b64` with any non-empty value: the client cannot take binary (engine.io checks no more). */
export function asksB64(query: URLSearchParams): boolean {
  return (query.get('b64') ?? '') !== ''
}

/** Every header of a request, lower-case keys: for the handshake hook. */
export function readHeaders(req: HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {}
  req.forEach((key, value) => {
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value
  })
  return headers
}

/**
 * Answers a request whose handler threw (a 500 of some form), unless it was
 * answered or aborted already: uWS then refuses the answer, and there is
 * nobody left to tell.
 */
export function answerFailedRequest(log: Logger, answer: () => void): void {
  try {
    answer()
  } catch {
    log.debug('a failed request could not be answered: answered or aborted already')
  }
}

export function remoteAddressOf(res: HttpResponse): string {
  return Buffer.from(res.getRemoteAddressAsText()).toString()
}

/**
 * CORS for polling responses (docs/consumer-protocol.md §10): the request's Origin echoed with
 * credentials (engine.io-client 3 in a browser sends `withCredentials`), or
 * `*` without an Origin. With an allow-list, an origin not on it is not
 * echoed, so a browser page from elsewhere cannot read any response.
 */
export class Cors {
  readonly #allowed: ReadonlySet<string>

  constructor(origins: readonly string[]) {
    this.#allowed = new Set(origins)
  }

  isAllowed(origin: string): boolean {
    return origin === '' || this.#allowed.size === 0 || this.#allowed.has(origin)
  }

  write(res: HttpResponse, origin: string): void {
    if (origin === '') {
      res.writeHeader('Access-Control-Allow-Origin', '*')
      return
    }
    if (this.isAllowed(origin))
      res
        .writeHeader('Access-Control-Allow-Origin', origin)
        .writeHeader('Access-Control-Allow-Credentials', 'true')
    res.writeHeader('Vary', 'Origin')
  }

  /** OPTIONS: 204 with the methods we serve and the headers the browser asked for. */
  writePreflight(res: HttpResponse, request: RequestInfo): void {
    res.writeStatus(statusLine(204))
    this.write(res, request.origin)
    res
      .writeHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS')
      .writeHeader('Access-Control-Allow-Headers', request.requestedHeaders || 'Content-Type')
      .endWithoutBody()
  }
}

/** A numbered error on a polling request: JSON body (see endJson), CORS headers. */
export function writeRefusal(
  res: HttpResponse,
  refusal: Refusal,
  cors: Cors,
  origin: string,
  isHead = false,
): void {
  const { code, message, retryAfterMs } = refusal
  res.writeStatus(statusLine(refusal.status))
  cors.write(res, origin)
  writeRetryAfter(res, retryAfterMs)
  endJson(res, retryAfterMs === undefined ? { code, message } : { code, message, retryAfterMs }, isHead)
}

/**
 * Ends a response with a JSON body; a HEAD request gets the headers only,
 * with Content-Length 0 (uWS would send the body: a client reading the next
 * response on the connection would take it for one). Not endWithoutBody:
 * this uWS build aborts the process there.
 */
export function endJson(res: HttpResponse, body: unknown, isHead = false): void {
  res.writeHeader('Content-Type', 'application/json')
  res.end(isHead ? undefined : JSON.stringify(body))
}

/** `Retry-After` in whole seconds, rounded up; none without a delay. */
export function writeRetryAfter(res: HttpResponse, retryAfterMs: number | undefined): void {
  if (retryAfterMs !== undefined) res.writeHeader('Retry-After', String(Math.ceil(retryAfterMs / 1000)))
}

/**
 * A bodyless error (overlapping request, 413, 500). `closeConnection` when
 * the request body was not read, so uWS does not go on parsing it.
 */
export function writeEmpty(
  res: HttpResponse,
  status: number,
  cors: Cors,
  origin: string,
  closeConnection = false,
): void {
  res.writeStatus(statusLine(status))
  cors.write(res, origin)
  res.end(undefined, closeConnection)
}

/**
 * Refuses a websocket upgrade before any 101, the way engine.io does: a plain
 * HTTP response with the message as a text/html body, then the connection
 * closes (uWS adds `Connection: close`). engine.io says 400 even for code 4
 * (docs/consumer-protocol.md §5); we keep 503 for "full" and "shutting down", which tell a load
 * balancer to try elsewhere.
 */
export function refuseUpgrade(res: HttpResponse, refusal: Refusal): void {
  res.writeStatus(statusLine(refusal.status === 403 ? 400 : refusal.status))
  writeRetryAfter(res, refusal.retryAfterMs)
  res.writeHeader('Content-Type', 'text/html').end(refusal.message, true)
}
