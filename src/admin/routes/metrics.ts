import { Router } from '@koa/router'
import type { MetricsText } from '../../metrics.js'

/**
 * `GET /metrics`: Prometheus text. Unauthenticated, like most exporters: the
 * admin port belongs on the operators' network, not the internet.
 */
export function metricsRoutes(scrape: () => Promise<MetricsText>): Router {
  const router = new Router()
  router.get('/metrics', async ctx => {
    const { contentType, body } = await scrape()
    ctx.type = contentType
    ctx.body = body
  })
  return router
}
