/**
 * The SDK's one error type. `code` says what went wrong as a number: the
 * broker's JSON-RPC error code (401, -32602, -32003, ...), the HTTP status of
 * a refused consumer handshake (400, 403, 503), or one of the SDK's own
 * negative codes below. `reason` and `detail` are what the broker said beyond
 * its message.
 */
export class SnapperError extends Error {
  override readonly name = 'SnapperError'
  readonly code: number
  /** The broker's reason: a 401's cause ("Error: Invalid signature"), the code name of our own errors (`STORE_UNAVAILABLE`), a refused handshake's message. */
  readonly reason: string | undefined
  /** The broker's explanation, when it gave one (its `data.reason`): why Redis refused a write, say. */
  readonly detail: string | undefined
  /** Whether the same call may succeed later (the broker said so, or the connection dropped). */
  readonly isTemporary: boolean
  /**
   * Set when `publish(batch)` fails: how many publications from the batch's
   * start were stored (pairs the broker skipped as invalid count too). Of the
   * rest, only the chunk that failed may be stored: when its answer did not
   * come (TIMEOUT). `batch.slice(storedUpTo)` is what to send again.
   */
  readonly storedUpTo: number | undefined

  constructor(
    code: number,
    message: string,
    details: {
      readonly reason?: string | undefined
      readonly detail?: string | undefined
      readonly isTemporary?: boolean
      readonly storedUpTo?: number
    } = {},
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.code = code
    this.reason = details.reason
    this.detail = details.detail
    this.isTemporary = details.isTemporary ?? false
    this.storedUpTo = details.storedUpTo
  }
}

/** The SDK's own codes, outside JSON-RPC's and HTTP's ranges. */
export const SDK_ERRORS = {
  /** close() was called before the call could be answered. */
  CLOSED: -1,
  /** No answer within the request timeout. */
  TIMEOUT: -2,
  /** The input cannot be sent (too large for one frame, not a valid token claim, ...). */
  BAD_INPUT: -3,
  /** The broker sent something the SDK cannot read. */
  PROTOCOL: -4,
  /** The connection to the broker could not be made or broke (ECONNREFUSED, ECONNRESET, ...); the SDK reconnects. */
  CONNECTION: -5,
  /** One of your event listeners threw (`cause` is what it threw); the SDK went on. */
  LISTENER: -6,
} as const

/** The `error` member of a JSON-RPC reply, as a SnapperError. */
export function fromRpcError(error: unknown): SnapperError {
  const { code, message, data } = (typeof error === 'object' && error !== null ? error : {}) as {
    code?: unknown
    message?: unknown
    data?: unknown
  }
  const fields = (typeof data === 'object' && data !== null ? data : {}) as {
    code?: unknown
    reason?: unknown
    temporary?: unknown
  }
  const reason = typeof data === 'string' ? data : typeof fields.code === 'string' ? fields.code : undefined
  const detail = typeof fields.reason === 'string' ? fields.reason : undefined
  return new SnapperError(
    typeof code === 'number' ? code : SDK_ERRORS.PROTOCOL,
    typeof message === 'string' ? message : 'error without a message',
    { reason, detail, isTemporary: fields.temporary === true },
  )
}
