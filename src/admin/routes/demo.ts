/**
 * The demo (`snapper start --demo`): a page where a browser consumer (the
 * SDK's bundle from /sdk/consumer.js, or the published snapper-consumer)
 * connects to the gateway, and a form that publishes to that consumer's own
 * room. Only mounted in demo mode: it signs consumer tokens for anyone who asks.
 *
 *   GET  /demo/                  the page
 *   GET  /demo/token             {token, userId, room, gatewayPort} for a new random user
 *   POST /demo/publish           {message}, `Authorization: Bearer <that token>` → {result: 1}
 *   GET  /demo/jsonrpc.js, /demo/engine.io.js, /demo/consumer.js   snapper-consumer's browser build
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { Router } from '@koa/router'
import type { Middleware } from 'koa'
import type { Tokens } from '../../auth/token.js'
import { isBoundedString } from '../../broker/api.js'
import type { BrokerCore } from '../../broker/core.js'
import { SnapperError } from '../../errors.js'
import type { Logger } from '../../log.js'
import { userRoom } from '../../redis/keys.js'
import { bearerToken } from '../auth.js'
import { DEMO_HTML } from '../dashboard/demo-page.js'
import { TokenRefused } from '../errors.js'
import { requireStore } from './publish.js'

/** Life of a demo consumer token, in seconds. */
const DEMO_TOKEN_TTL_SEC = 3600

/**
 * snapper-consumer's UMD build wants `window.jsonrpc` and `window.eio` first.
 * Each file is the one snapper-consumer itself would load (its own nested
 * engine.io-client 3, not the top-level engine.io-client 6).
 */
function loadClientFiles(log: Logger): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  try {
    const consumer = createRequire(import.meta.url).resolve('snapper-consumer')
    const fromConsumer = createRequire(consumer)
    files.set('consumer.js', readFileSync(consumer))
    files.set('jsonrpc.js', readFileSync(fromConsumer.resolve('jsonrpc-lite/jsonrpc.js')))
    files.set(
      'engine.io.js',
      readFileSync(`${dirname(fromConsumer.resolve('engine.io-client/package.json'))}/engine.io.js`),
    )
  } catch (err) {
    // A production install without dev dependencies: the page says the client is missing.
    log.warn(
      { err: (err as Error).message },
      'demo: snapper-consumer browser files not found (npm install snapper-consumer)',
    )
    files.clear()
  }
  return files
}

export function demoRoutes(deps: {
  core: BrokerCore
  tokens: Tokens
  maxMessageBytes: number
  gatewayPort: number
  parseBody: Middleware
  logger: Logger
}): Router {
  const { core, tokens, maxMessageBytes, gatewayPort, parseBody, logger } = deps
  const files = loadClientFiles(logger)
  // Strict: /demo and /demo/ differ, so that the page's relative URLs resolve under /demo/.
  const router = new Router({ strict: true })

  router.get('/demo', ctx => ctx.redirect('/demo/'))
  router.get('/demo/', ctx => {
    ctx.type = 'html'
    ctx.set('Cache-Control', 'no-store')
    ctx.body = DEMO_HTML
  })
  router.get('/demo/token', ctx => {
    const userId = randomBytes(12).toString('hex')
    ctx.set('Cache-Control', 'no-store')
    ctx.body = {
      token: tokens.sign({ userId, source: 'web' }, DEMO_TOKEN_TTL_SEC),
      userId,
      room: userRoom(userId),
      gatewayPort,
    }
  })
  router.get('/demo/:file', (ctx, next) => {
    const file = files.get(ctx.params.file ?? '')
    if (file === undefined) return next() // a 404 from the error boundary
    ctx.type = 'application/javascript'
    ctx.body = file
  })
  router.post(
    '/demo/publish',
    (ctx, next) => {
      const verified = tokens.verifyConsumer(bearerToken(ctx))
      if (!verified.ok) throw new TokenRefused(verified)
      ctx.state.userId = verified.claims.userId
      return next()
    },
    parseBody,
    async ctx => {
      const { message } = (ctx.request.body ?? {}) as { message?: unknown }
      if (!isBoundedString(message, maxMessageBytes)) throw new SnapperError('INVALID_PARAMS')
      requireStore(core)
      ctx.body = { result: await core.producerApi.publish([[userRoom(ctx.state.userId as string), message]]) }
    },
  )
  return router
}
