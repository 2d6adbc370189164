/**
 * GET /sdk/consumer.js: the consumer SDK as one browser ES module (made by
 * `npm run build` with esbuild), for pages that import it from the broker:
 * `import { Consumer } from 'https://<admin>/sdk/consumer.js'`. Module scripts
 * are fetched with CORS, so any origin may load it; it holds no secret.
 */
import { readFileSync } from 'node:fs'
import { Router } from '@koa/router'
import type { Logger } from '../../log.js'

/** The bundle's place in dist/, from this file's (dist/src/admin/routes/). */
const BUNDLE = new URL('../../../sdk/consumer.js', import.meta.url)

function readBundle(log: Logger): { code: Buffer; map: Buffer | undefined } | undefined {
  try {
    const code = readFileSync(BUNDLE)
    let map: Buffer | undefined
    try {
      map = readFileSync(new URL('consumer.js.map', BUNDLE))
    } catch {
      map = undefined // a bundle made without its source map: served alone
    }
    return { code, map }
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'sdk: dist/sdk/consumer.js not found (run npm run build)')
    return undefined
  }
}

export function sdkRoutes(log: Logger): Router {
  const bundle = readBundle(log)
  const router = new Router()
  router.get('/sdk/consumer.js', (ctx, next) => {
    if (!bundle) return next() // a 404 from the error boundary
    ctx.type = 'application/javascript'
    ctx.set('Access-Control-Allow-Origin', '*')
    ctx.set('Cache-Control', 'no-cache')
    ctx.body = bundle.code
  })
  router.get('/sdk/consumer.js.map', (ctx, next) => {
    if (!bundle?.map) return next()
    ctx.type = 'application/json'
    ctx.set('Access-Control-Allow-Origin', '*')
    ctx.body = bundle.map
  })
  return router
}
