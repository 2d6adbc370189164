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
 *   identity body, Content-Length ≤ adminMaxBodyBytes → that length, up front
 *   Content-Encoding gzip/deflate/br                 → adminMaxBodyBytes, up front (what it may inflate to)
 *   chunked identity body                             → each chunk as it arrives
 *   Content-Length > adminMaxBodyBytes                → nothing: the parser answers 413 unread
 *
 * A request whose share does not fit gets 503 BODIES_PENDING with
 * Retry-After; nothing of it is done (README "Limits and bad input").
 */
import type { IncomingMessage } from 'node:http'
import type { Context, Middleware } from 'koa'
import { SnapperError } from '../errors.js'
import { guard } from '../guard.js'
import type { Logger } from '../log.js'
import type { AdminCounters } from '../metrics.js'
import type { RefusalLog } from '../refusal-log.js'

/** The methods whose bodies @koa/bodyparser reads (its `parsedMethods`); others' bodies Node discards unread. */
const PARSED_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH'])

export class PendingBodies {
  #bytes = 0

  constructor(readonly maxBytes: number) {}

  /** Bytes taken now, by every request whose response has not closed. */
  get bytes(): number {
    return this.#bytes
  }

  /** Takes `bytes` if they fit under maxBytes; false (and nothing taken) if not. */
  take(bytes: number): boolean {
    if (this.#bytes + bytes > this.maxBytes) return false
    this.#bytes += bytes
    return true
  }

  give(bytes: number): void {
    this.#bytes -= bytes
  }
}

/** What to take before reading: a byte count, or undefined when the body is counted as it arrives. */
function bytesUpFront(req: IncomingMessage, maxBodyBytes: number): number | undefined {
  const encoding = req.headers['content-encoding'] ?? 'identity'
  if (encoding !== 'identity') return maxBodyBytes
  const length = req.headers['content-length']
  if (length === undefined) return undefined
  const bytes = Number(length) // Node has checked it is digits
  return bytes > maxBodyBytes ? 0 : bytes
}

/** A request with a body: Node sets neither header on one without. */
const hasBody = (req: IncomingMessage): boolean =>
  req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined

/**
 * `parse` (the body parser) behind the bound: runs it only once the body's
 * share is taken, and stops a chunked body whose next chunk does not fit.
 */
export function limitPendingBodies(
  parse: Middleware,
  deps: {
    readonly pending: PendingBodies
    readonly maxBodyBytes: number
    readonly counters: AdminCounters
    readonly refusals: RefusalLog
    readonly log: Logger
  },
): Middleware {
  const { pending, maxBodyBytes, counters, refusals, log } = deps

  const refuse = (ctx: Context, bodyBytes: number | undefined): SnapperError => {
    counters.refused.adminMaxPendingBodyBytes = (counters.refused.adminMaxPendingBodyBytes ?? 0) + 1
    const remote = ctx.req.socket.remoteAddress
    const fields = {
      limit: 'adminMaxPendingBodyBytes',
      remote,
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
    const upFront = bytesUpFront(req, maxBodyBytes)
    // Refused before a byte of the body is read; Node discards the body after the answer.
    if (upFront !== undefined && !pending.take(upFront)) throw refuse(ctx, upFront)
    let held = upFront ?? 0
    ctx.res.once('close', () => pending.give(held))
    if (upFront !== undefined) return parse(ctx, next)

    // A chunked body: this listener goes first, then the parser's (raw-body's, attached as parse()
    // is called). A chunk that does not fit fails the parser with our error, through its 'error'
    // listener; its body parser's onError then closes the connection, the rest unread.
    const onChunk = guard(log, 'admin body count', (chunk: Buffer) => {
      if (pending.take(chunk.length)) {
        held += chunk.length
        return
      }
      req.off('data', onChunk)
      const refusal = refuse(ctx, undefined)
      // No 'error' listener: the parser has stopped reading already (413, aborted), nothing to stop.
      if (req.listenerCount('error') > 0) req.emit('error', refusal)
    })
    req.on('data', onChunk)
    return parse(ctx, next)
  }
}
