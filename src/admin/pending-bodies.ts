/**
 * The bytes of admin request bodies being read or parsed, across all
 * requests, bounded by adminMaxPendingBodyBytes: adminMaxBodyBytes bounds one
 * body, but adminMaxConnections of them at once (1000 × 1 MiB) would hold
 * a gigabyte in the process that also takes the producer connections.
 *
 * A request takes its share before its body is read and gives it back when
 * its response closes (answered, aborted, timed out: Node closes the
 * response in every case):
 *
 *   identity body, Content-Length ≤ adminMaxBodyBytes → that length
 *   Content-Encoding gzip/deflate/br, or chunked     → adminMaxBodyBytes (what it may grow to)
 *   Content-Length > adminMaxBodyBytes                → nothing: the parser answers 413 unread
 *
 * A request whose share does not fit gets 503 BODIES_PENDING with
 * Retry-After; nothing of it is done (README "Limits and bad input").
 */
import type { IncomingMessage } from 'node:http'
import type { Context, Middleware } from 'koa'
import { SnapperError } from '../errors.js'
import type { Logger } from '../log.js'
import type { AdminCounters } from '../metrics/admin.js'
import type { BoundedLog } from '../bounded-log.js'

/** The methods whose bodies @koa/bodyparser reads (its `parsedMethods`); others' bodies Node discards unread. */
const PARSED_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH'])

export class PendingBodies {
  /** Bytes taken now, by every request whose response has not closed (read by /metrics). */
  readonly #counters: Pick<AdminCounters, 'pendingBodyBytes'>

  constructor(
    readonly maxBytes: number,
    counters: Pick<AdminCounters, 'pendingBodyBytes'>,
  ) {
    this.#counters = counters
  }

  get bytes(): number {
    return this.#counters.pendingBodyBytes
  }

  /** Takes `bytes` if they fit under maxBytes; false (and nothing taken) if not. */
  take(bytes: number): boolean {
    if (this.bytes + bytes > this.maxBytes) return false
    this.#counters.pendingBodyBytes += bytes
    return true
  }

  give(bytes: number): void {
    this.#counters.pendingBodyBytes -= bytes
  }
}

/** What a body takes before it is read: its length if it says so, else the most it may be. */
function bytesUpFront(req: IncomingMessage, maxBodyBytes: number): number {
  const encoding = req.headers['content-encoding'] ?? 'identity'
  const length = req.headers['content-length']
  if (encoding !== 'identity' || length === undefined) return maxBodyBytes
  const bytes = Number(length) // Node has checked it is digits
  return bytes > maxBodyBytes ? 0 : bytes
}

/** A request with a body: Node sets neither header on one without. */
const hasBody = (req: IncomingMessage): boolean =>
  req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined

/** `parse` (the body parser) behind the bound: runs it only once the body's share is taken. */
export function limitPendingBodies(
  parse: Middleware,
  deps: {
    readonly pending: PendingBodies
    readonly maxBodyBytes: number
    readonly counters: AdminCounters
    readonly refusals: BoundedLog
    readonly log: Logger
  },
): Middleware {
  const { pending, maxBodyBytes, counters, refusals, log } = deps

  const refuse = (ctx: Context, bodyBytes: number): SnapperError => {
    counters.refused.adminMaxPendingBodyBytes = (counters.refused.adminMaxPendingBodyBytes ?? 0) + 1
    const fields = {
      limit: 'adminMaxPendingBodyBytes',
      remote: ctx.req.socket.remoteAddress,
      path: ctx.path,
      bodyBytes,
      pendingBytes: pending.bytes,
    }
    refusals.warn(log, fields, 'admin request refused: too many request bodies in progress')
    return new SnapperError('BODIES_PENDING', undefined, {
      reason: 'request bodies in progress at their limit',
    })
  }

  return (ctx, next) => {
    const { req } = ctx
    if (!PARSED_METHODS.has(ctx.method) || !hasBody(req)) return parse(ctx, next)
    // Closed already (the client left): no close to come would give a share back; the parser answers 499.
    if (ctx.res.closed) return parse(ctx, next)
    const bytes = bytesUpFront(req, maxBodyBytes)
    // Refused before a byte of the body is read; Node discards the body after the answer.
    if (!pending.take(bytes)) throw refuse(ctx, bytes)
    ctx.res.once('close', () => pending.give(bytes))
    return parse(ctx, next)
  }
}
