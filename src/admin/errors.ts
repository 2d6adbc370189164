/**
 * The admin boundary's one translator: ERRORS → HTTP status + JSON. Every
 * refusal of the admin app goes out as
 *
 *   { "error": { "code": <JSON-RPC code, as on TCP>, "message": <ERRORS text>,
 *                "data": { "code": <ERRORS key>, "temporary"?: true, "reason"?: <why a token was refused> } } }
 *
 * with ERRORS[code].http as the status. Anything thrown that is not a
 * SnapperError is a bug: logged with its stack, answered as 500 "Internal
 * error", its message never echoed (koa's `expose`, decided here once).
 */
import type { Context, Middleware } from 'koa'
import { refusalCode, type Refusal } from '../auth/token.js'
import { ERRORS, httpError, isSnapperError, SnapperError, type ErrorCode } from '../errors.js'
import type { Logger } from '../log.js'
import type { AdminCounters } from '../metrics/admin.js'

/** A refused token (401), or one of another role (400): its reason is ours (the verifier's), safe to show. */
export class TokenRefused extends SnapperError {
  constructor(refusal: Pick<Refusal, 'reason' | 'isWrongRole'>) {
    super(refusalCode(refusal), undefined, { reason: refusal.reason })
  }
}

function answer(ctx: Context, code: ErrorCode, counters: AdminCounters, reason?: string): void {
  const { status, body } = httpError(code, reason)
  ctx.status = status
  ctx.body = body
  if (ERRORS[code].http === 503) ctx.set('Retry-After', '1')
  counters.errors[code] = (counters.errors[code] ?? 0) + 1
}

/** The methods of the routes whose path matched (@koa/router collects their layers in `ctx.matched`). */
function methodsOfPath(ctx: Context): string[] {
  const layers = (ctx as { matched?: readonly { readonly methods: readonly string[] }[] }).matched ?? []
  return [...new Set(layers.flatMap(layer => layer.methods))]
}

/** What no route answered: 405 with `Allow` when the path is known but not with this method, else 404. */
function answerUnrouted(ctx: Context, counters: AdminCounters): void {
  const allowed = methodsOfPath(ctx)
  if (allowed.length === 0 || allowed.includes(ctx.method)) {
    answer(ctx, 'METHOD_NOT_FOUND', counters)
    return
  }
  ctx.set('Allow', allowed.join(', '))
  answer(ctx, 'METHOD_NOT_ALLOWED', counters)
}

/**
 * Outermost but the access log. Also answers what no route matched, so that
 * every admin error, 404 and 405 included, has the one shape.
 */
export function errorBoundary(log: Logger, counters: AdminCounters): Middleware {
  return async (ctx, next) => {
    try {
      await next()
      if (ctx.status === 404 && ctx.body === undefined) answerUnrouted(ctx, counters)
    } catch (err) {
      if (isSnapperError(err)) {
        answer(ctx, err.code, counters, err.reason)
        return
      }
      log.error({ err, method: ctx.method, path: ctx.path }, 'admin request failed unexpectedly')
      answer(ctx, 'INTERNAL', counters)
    }
  }
}

/** What co-body's JSON parser (bourne) throws for a `__proto__` key, which it refuses. */
const FORBIDDEN_PROTO = 'Object contains forbidden prototype property'

/**
 * What @koa/bodyparser (co-body, raw-body) throws, as our codes: a body over
 * the limit is 413; a `__proto__` key (valid JSON, refused against prototype
 * poisoning) is invalid params, saying so; anything else (not JSON, not an
 * object or array, a body cut short) is a parse error. The body is always
 * read as UTF-8.
 */
export function bodyError(err: unknown): SnapperError {
  const { status, type, message } = (err ?? {}) as { status?: unknown; type?: unknown; message?: unknown }
  if (status === 413 || type === 'entity.too.large')
    return new SnapperError('FRAME_TOO_LARGE', undefined, { cause: err })
  if (message === FORBIDDEN_PROTO)
    return new SnapperError('INVALID_PARAMS', undefined, {
      cause: err,
      reason: 'a "__proto__" key is not allowed',
    })
  return new SnapperError('PARSE_ERROR', undefined, { cause: err })
}
