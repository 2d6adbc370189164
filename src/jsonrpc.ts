/**
 * JSON-RPC 2.0 as both published clients speak it (jsonrpc-lite rules, see
 * docs/producer-protocol.md §3): classify what a producer or a consumer sent,
 * and build messages with the exact key order the clients were observed to
 * receive. A producer sends requests and notifications; a consumer also
 * answers our `publish` requests with a success or an error.
 *
 * Pure: imports nothing but errors.ts, so it can be fuzzed alone.
 */
import { ERRORS, isSnapperError, STANDARD_RPC_CODES, type ErrorCode } from './errors.js'

/** A request id as jsonrpc-lite accepts it: a non-empty string or a safe integer. */
export type RpcId = string | number

export type RpcMessage =
  | { readonly kind: 'request'; readonly id: RpcId; readonly method: string; readonly params: unknown }
  | { readonly kind: 'notification'; readonly method: string; readonly params: unknown }
  /** A response to one of our requests (a consumer's ack). */
  | { readonly kind: 'success'; readonly id: RpcId; readonly result: unknown }
  /** An error response (a consumer's nack); `id` null when the peer could not tell which request. */
  | { readonly kind: 'error'; readonly id: RpcId | null; readonly error: object }
  /** Not something we can serve; `id` is the request's when it could be recovered. */
  | { readonly kind: 'invalid'; readonly id: RpcId | null; readonly code: 'PARSE_ERROR' | 'INVALID_REQUEST' }

/** The `error` member of a reply. */
export interface RpcError {
  readonly message: string
  readonly code: number
  readonly data?: unknown
}

/**
 * Deepest `params` nesting accepted. JSON.parse copes with any depth but
 * JSON.stringify (echo) overflows the stack on deep values; real params are
 * at most 2 deep (`[[room, message], ...]`).
 */
export const MAX_PARAMS_DEPTH = 32

const isRpcId = (value: unknown): value is RpcId =>
  (typeof value === 'string' && value !== '') || Number.isSafeInteger(value)

/**
 * Classifies one frame's payload. Invalid UTF-8 becomes U+FFFD, as the
 * original's `buf.toString()` did. Never throws.
 */
export function parseMessage(payload: Buffer | string): RpcMessage {
  let value: unknown
  try {
    value = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'))
  } catch {
    // Not JSON: answered as a parse error, the stream itself is still fine.
    return { kind: 'invalid', id: null, code: 'PARSE_ERROR' }
  }
  return classifyMessage(value)
}

/**
 * Classifies a parsed JSON value in jsonrpc-lite's order: no `id` is a
 * notification; with an id, a `method` makes a request, then `result` a
 * success, then `error` an error response. A request or notification needs a
 * non-empty method and, if any, object or array params.
 */
export function classifyMessage(value: unknown): RpcMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid(null)
  const object = value as Record<string, unknown>
  const hasId = Object.hasOwn(object, 'id')
  const id = hasId && isRpcId(object.id) ? object.id : null
  if (object.jsonrpc !== '2.0') return invalid(id)
  const { method, params } = object
  const isCall = typeof method === 'string' && method !== '' && isParams(params)
  if (!hasId) return isCall ? { kind: 'notification', method, params } : invalid(null)
  if (Object.hasOwn(object, 'method'))
    return isCall && id !== null ? { kind: 'request', id, method, params } : invalid(id)
  if (Object.hasOwn(object, 'result'))
    return id === null ? invalid(null) : { kind: 'success', id, result: object.result }
  const { error } = object
  // Its message and code are not checked: a nack is a nack.
  if ((id !== null || object.id === null) && typeof error === 'object' && error !== null)
    return { kind: 'error', id, error }
  return invalid(id)
}

const invalid = (id: RpcId | null): RpcMessage => ({ kind: 'invalid', id, code: 'INVALID_REQUEST' })

/** Params are absent, or an object or array no deeper than MAX_PARAMS_DEPTH. */
function isParams(params: unknown): boolean {
  return (
    params === undefined ||
    (typeof params === 'object' && params !== null && isShallow(params, MAX_PARAMS_DEPTH))
  )
}

/** Whether a parsed JSON value nests no deeper than `depth` (recursion bounded by `depth`). */
export function isShallow(value: object, depth: number): boolean {
  if (depth === 0) return false
  if (Array.isArray(value)) {
    for (const member of value as unknown[])
      if (typeof member === 'object' && member !== null && !isShallow(member, depth - 1)) return false
    return true
  }
  for (const key in value) {
    const member = (value as Record<string, unknown>)[key]
    if (typeof member === 'object' && member !== null && !isShallow(member, depth - 1)) return false
  }
  return true
}

/** A success reply, key order `jsonrpc, id, result`. `result` must be JSON (undefined goes out as null). */
export function encodeSuccess(id: RpcId, result: unknown): string {
  return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${JSON.stringify(result ?? null)}}`
}

/** An error reply, key order `jsonrpc, id, error{message, code, data?}`. */
export function encodeError(id: RpcId | null, error: RpcError): string {
  const data = error.data === undefined ? '' : `,"data":${JSON.stringify(error.data)}`
  return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"error":{"message":${JSON.stringify(error.message)},"code":${error.code}${data}}}`
}

/**
 * The error a client sees for one of our codes. JSON-RPC's own codes go out
 * without `data`, byte for byte as the original sent them; ours carry
 * `data: {code}` (plus `temporary: true` when retrying helps, and `reason`
 * when there is one). 401 carries the reason string instead, as the
 * original's did.
 */
export function rpcError(code: ErrorCode, reason?: string): RpcError {
  const { rpc, text, temporary } = ERRORS[code]
  if (code === 'UNAUTHORIZED') return { message: text, code: rpc, data: reason }
  if (STANDARD_RPC_CODES.has(code)) return { message: text, code: rpc }
  const data = { code, ...(temporary && { temporary }), ...(reason !== undefined && { reason }) }
  return { message: text, code: rpc, data }
}

/** The little of a logger this module needs (pino's fits). */
export interface ErrorLog {
  error(fields: object, message: string): void
}

/**
 * The producer boundary's one translator. A SnapperError becomes its table
 * entry; anything else is a bug: logged with its stack, answered as
 * "Internal error", its message never echoed.
 */
export function toRpcError(err: unknown, log: ErrorLog): RpcError {
  if (isSnapperError(err)) return rpcError(err.code, err.reason)
  log.error({ err }, 'producer method failed unexpectedly')
  return rpcError('INTERNAL')
}

/** The table code behind a thrown value, for counting. */
export function errorCodeOf(err: unknown): ErrorCode {
  return isSnapperError(err) ? err.code : 'INTERNAL'
}
