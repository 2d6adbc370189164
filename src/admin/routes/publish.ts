/**
 * The HTTP producer API, for producers that cannot keep a TCP connection. It
 * is the TCP methods (docs/producer-protocol.md §5) over HTTP, with the same
 * checks and error codes; JSON in, `{"result": ...}` out.
 *
 *   POST /v1/publish                      {room, message} | [{room, message}, ...] → {result: <accepted>}
 *   POST /v1/rooms/:room/subscribe        {consumerId}                              → {result: 1 | 0}
 *   POST /v1/rooms/:room/unsubscribe      {consumerId}                              → {result: 1 | 0}
 *   GET  /v1/users/:userId/consumers                                                → {result: {length, android, ios, web}}
 *   POST /v1/track                        {room, message, escalateAfterMs?}         → {result: {id}}
 *   GET  /v1/receipts/:id                                                           → {result: {acked, moreAcks, escalated}}
 *
 * Rooms with `/` go URL-encoded in the path (`projects%2F1`). A publish
 * answers once every accepted message is stored in Redis; items that are not
 * a bounded non-empty `room` and `message` are skipped, as on TCP.
 */
import { Router } from '@koa/router'
import type { Context, Middleware } from 'koa'
import type { Tokens } from '../../auth/token.js'
import {
  checkRoomCount,
  escalateAfterMsOf,
  isBoundedString,
  isTrackId,
  isValidPublication,
  type InputLimits,
  type Publication,
} from '../../broker/api.js'
import type { BrokerCore } from '../../broker/core.js'
import { SnapperError } from '../../errors.js'
import { verifyProducer } from '../auth.js'

/**
 * Refuses at once while Redis is down (the offline queue would hold the
 * request until Redis is back) or, as the watchdog found, does not answer.
 * Given `keys`, only while those do not (on a cluster, their masters: one
 * stalled master does not stop the rest); else while any master does not.
 * On a cluster the refusal names the masters not serving (not answering, or
 * in a cluster that is down).
 */
export function requireStore(core: BrokerCore, keys: readonly string[] = []): void {
  const { redis } = core
  // Key by key: a publish's keys are more than a call's arguments may spread.
  if (keys.length === 0 ? redis.isReady() : keys.every(key => redis.isReadyFor(key))) return
  const { mastersDown } = redis
  const reason =
    mastersDown.length === 0
      ? undefined
      : `redis ${mastersDown.length === 1 ? 'master' : 'masters'} ${mastersDown.join(', ')} not serving (no PING answer, or cluster_state fail: /readyz says which)`
  throw new SnapperError('STORE_UNAVAILABLE', undefined, { reason })
}

/** The accepted publications of a body, in order; skipped items are not an error, too many rooms is. */
export function toPublications(body: unknown, limits: InputLimits): Publication[] {
  if (typeof body !== 'object' || body === null) throw new SnapperError('INVALID_PARAMS')
  const items: unknown[] = Array.isArray(body) ? body : [body]
  const publications: Publication[] = []
  for (const item of items) {
    if (typeof item !== 'object' || item === null) continue
    const { room, message } = item as { room?: unknown; message?: unknown }
    if (isValidPublication(room, message, limits)) publications.push([room as string, message as string])
  }
  checkRoomCount(publications, limits)
  return publications
}

/** `parseBody` runs after the token check: a stranger's body is never read. */
export function publishRoutes(deps: {
  core: BrokerCore
  tokens: Tokens
  limits: InputLimits
  parseBody: Middleware
  /** Bounds the wait for Redis (redis-deadline.ts): a write answered so may still be done. */
  deadline: Middleware
}): Router {
  const { core, tokens, limits, parseBody, deadline } = deps
  const api = core.producerApi
  const isName = (value: unknown): value is string => isBoundedString(value, limits.maxRoomBytes)
  const nameParam = (value: unknown): string => {
    if (!isName(value)) throw new SnapperError('INVALID_PARAMS')
    return value
  }
  const consumerIdOf = (ctx: Context): string => {
    const body = ctx.request.body as { consumerId?: unknown } | undefined
    return nameParam(typeof body === 'object' && body !== null ? body.consumerId : undefined)
  }

  const router = new Router({ prefix: '/v1' })
  router.use(
    (ctx, next) => {
      verifyProducer(tokens, ctx)
      return next()
    },
    parseBody,
    deadline,
  )

  router.post('/publish', async ctx => {
    const publications = toPublications(ctx.request.body, limits)
    if (publications.length > 0) {
      // Each room's messages are stored on its own slot: only those rooms' masters must answer.
      const rooms = new Set(publications.map(([room]) => room))
      requireStore(
        core,
        Array.from(rooms, room => core.keys.room(room).log),
      )
      await api.publish(publications)
    }
    ctx.body = { result: publications.length }
  })
  router.post('/rooms/:room/subscribe', async ctx => {
    const room = nameParam(ctx.params.room)
    const consumerId = consumerIdOf(ctx)
    requireStore(core)
    ctx.body = { result: await api.subscribe(room, consumerId) }
  })
  router.post('/rooms/:room/unsubscribe', async ctx => {
    const room = nameParam(ctx.params.room)
    const consumerId = consumerIdOf(ctx)
    requireStore(core)
    ctx.body = { result: await api.unsubscribe(room, consumerId) }
  })
  router.get('/users/:userId/consumers', async ctx => {
    const userId = nameParam(ctx.params.userId)
    requireStore(core)
    const { length, android, ios, web } = await api.consumers(userId)
    ctx.body = { result: { length, android, ios, web } }
  })
  router.post('/track', async ctx => {
    const body = ctx.request.body
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new SnapperError('INVALID_PARAMS')
    const { room, message, ...options } = body as { room?: unknown; message?: unknown }
    if (!isValidPublication(room, message, limits)) throw new SnapperError('INVALID_PARAMS')
    const escalateAfterMs = escalateAfterMsOf(options)
    requireStore(core)
    ctx.body = { result: { id: await api.track(room as string, message as string, escalateAfterMs) } }
  })
  router.get('/receipts/:id', async ctx => {
    const id = ctx.params.id
    if (!isTrackId(id, limits)) throw new SnapperError('INVALID_PARAMS')
    requireStore(core)
    const { acked, moreAcks, escalated } = await api.receipt(id)
    ctx.set('Cache-Control', 'no-store')
    ctx.body = { result: { acked, moreAcks, escalated } }
  })
  return router
}
