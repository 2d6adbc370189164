/**
 * JSON-RPC 2.0 as snapper-producer speaks it (jsonrpc-lite 1.3.1 rules, see
 * spec/producer-wire.md §3): classify what a producer sent, and build replies
 * with the exact key order the client was observed to receive.
 *
 * Pure: imports nothing but errors.ts, so it can be fuzzed alone.
 */
import { ERRORS, isSnapperError, STANDARD_RPC_CODES, type ErrorCode } from '../errors.js'

/** A request id as jsonrpc-lite accepts it: a non-empty string or a safe integer. */
export type RpcId = string | number

export type RpcMessage =
  | { readonly kind: 'request'; readonly id: RpcId; readonly method: string; readonly params: unknown }
  | { readonly kind: 'notification'; readonly method: string; readonly params: unknown }
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

/** Classifies a parsed JSON value: in jsonrpc-lite's order, id first, then method. */
export function classifyMessage(value: unknown): RpcMessage {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { kind: 'invalid', id: null, code: 'INVALID_REQUEST' }
  const object = value as Record<string, unknown>
  const hasId = Object.hasOwn(object, 'id')
  const id = hasId && isRpcId(object.id) ? object.id : null
  const { method, params } = object
  const isValid =
    object.jsonrpc === '2.0' &&
    (!hasId || id !== null) &&
    typeof method === 'string' &&
    method !== '' &&
    (params === undefined ||
      (typeof params === 'object' && params !== null && isShallow(params, MAX_PARAMS_DEPTH)))
  if (!isValid) return { kind: 'invalid', id, code: 'INVALID_REQUEST' }
  return id === null ? { kind: 'notification', method, params } : { kind: 'request', id, method, params }
}

/** Whether a parsed JSON value nests no deeper than `depth` (recursion bounded by `depth`). */
function isShallow(value: object, depth: number): boolean {
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
 * `data: {code}` (plus `temporary: true` when retrying helps). 401 carries
 * the reason string instead, as the original's did.
 */
export function rpcError(code: ErrorCode, reason?: string): RpcError {
  const { rpc, text, temporary } = ERRORS[code]
  if (code === 'UNAUTHORIZED') return { message: text, code: rpc, data: reason }
  if (STANDARD_RPC_CODES.has(code)) return { message: text, code: rpc }
  return { message: text, code: rpc, data: temporary ? { code, temporary } : { code } }
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
  if (isSnapperError(err)) return rpcError(err.code)
  log.error({ err }, 'producer method failed unexpectedly')
  return rpcError('INTERNAL')
}

/** The table code behind a thrown value, for counting. */
export function errorCodeOf(err: unknown): ErrorCode {
  return isSnapperError(err) ? err.code : 'INTERNAL'
}
