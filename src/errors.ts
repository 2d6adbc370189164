/**
 * The one table of errors a client can see. Codes are permanent strings; each
 * boundary maps them to its own bytes exactly once (JSON-RPC in
 * `jsonrpc.ts`, HTTP status in the admin app). Anything thrown that is
 * not a SnapperError is a bug: it is logged with its stack and answered as
 * "Internal error", never with its own message.
 *
 * `rpc` and `text` of the first five are JSON-RPC 2.0's own and match the
 * original broker byte for byte (it sent no `data` for them); the rest carry
 * `data: {code}` so that a client can tell them apart.
 */
export const ERRORS = {
  PARSE_ERROR: { rpc: -32700, http: 400, temporary: false, text: 'Parse error' },
  INVALID_REQUEST: { rpc: -32600, http: 400, temporary: false, text: 'Invalid request' },
  METHOD_NOT_FOUND: { rpc: -32601, http: 404, temporary: false, text: 'Method not found' },
  /** HTTP only: a known path asked with a method it does not take (the admin app adds `Allow`). */
  METHOD_NOT_ALLOWED: { rpc: -32601, http: 405, temporary: false, text: 'Method not allowed' },
  INVALID_PARAMS: { rpc: -32602, http: 400, temporary: false, text: 'Invalid params' },
  INTERNAL: { rpc: -32603, http: 500, temporary: false, text: 'Internal error' },
  UNAUTHORIZED: { rpc: 401, http: 401, temporary: false, text: 'Unauthorized' },
  /** An authentic, current token of another role (the original's /stats answered it with 400). */
  WRONG_ROLE: { rpc: 400, http: 400, temporary: false, text: 'Token not allowed here' },
  FRAME_TOO_LARGE: { rpc: -32600, http: 413, temporary: false, text: 'Frame too large' },
  BAD_FRAMING: { rpc: -32700, http: 400, temporary: false, text: 'Bad framing' },
  STORE_UNAVAILABLE: { rpc: -32003, http: 503, temporary: true, text: 'Storage unavailable, retry' },
  SHUTTING_DOWN: { rpc: -32004, http: 503, temporary: true, text: 'Shutting down, retry elsewhere' },
  /** A publish naming more distinct rooms than maxRoomsPerPublish: none of it is stored. */
  TOO_MANY_ROOMS: { rpc: -32005, http: 413, temporary: false, text: 'Too many rooms in one publish' },
  /** Past a producer connection limit (unauthenticated per address or in all, or every connection). */
  TOO_MANY_CONNECTIONS: {
    rpc: -32006,
    http: 503,
    temporary: true,
    text: 'Too many connections, retry later',
  },
  UNKNOWN_ID: { rpc: -32007, http: 404, temporary: false, text: 'Unknown or expired id' },
  NO_ESCALATION: { rpc: -32008, http: 400, temporary: false, text: 'No escalation webhook configured' },
  /** A subscribe of a consumer already in maxRoomsPerConsumer rooms: nothing changed. */
  CONSUMER_ROOMS_FULL: { rpc: -32009, http: 409, temporary: false, text: 'Consumer is in too many rooms' },
  /** HTTP only: the admin app holds adminMaxPendingBodyBytes of request bodies; this one is not read. */
  BODIES_PENDING: {
    rpc: -32010,
    http: 503,
    temporary: true,
    text: 'Too many request bodies in progress, retry',
  },
} as const

export type ErrorCode = keyof typeof ERRORS

/** Codes whose JSON-RPC form is the standard one, sent without `data`. */
export const STANDARD_RPC_CODES: ReadonlySet<ErrorCode> = new Set([
  'PARSE_ERROR',
  'INVALID_REQUEST',
  'METHOD_NOT_FOUND',
  'INVALID_PARAMS',
  'INTERNAL',
])

export class SnapperError extends Error {
  /** Why, in words safe to show the client (a refused token, a full Redis); sent as `data.reason`. */
  readonly reason: string | undefined

  constructor(
    readonly code: ErrorCode,
    message: string = ERRORS[code].text,
    options?: ErrorOptions & { readonly reason?: string },
  ) {
    super(message, options)
    this.name = 'SnapperError'
    this.reason = options?.reason
  }
}

export function isSnapperError(err: unknown, code?: ErrorCode): err is SnapperError {
  return err instanceof SnapperError && (code === undefined || err.code === code)
}

/** The JSON body of an HTTP refusal (admin app, gateway /stats): the JSON-RPC code and text, our code in data. */
export interface HttpErrorBody {
  readonly error: {
    readonly code: number
    readonly message: string
    readonly data: { readonly code: ErrorCode; readonly temporary?: true; readonly reason?: string }
  }
}

/** The status and body of one of our codes. `reason` goes in `data` (token refusals say why, as on TCP). */
export function httpError(code: ErrorCode, reason?: string): { status: number; body: HttpErrorBody } {
  const { rpc, http, text, temporary } = ERRORS[code]
  const data = { code, ...(temporary && { temporary }), ...(reason !== undefined && { reason }) }
  return { status: http, body: { error: { code: rpc, message: text, data } } }
}
