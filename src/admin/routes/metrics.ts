import { Router } from '@koa/router'
import type { MetricsText } from '../../metrics/index.js'
import { oneAtATime } from '../one-at-a-time.js'

/**
 * `GET /metrics`: Prometheus text. Unauthenticated, like most exporters: the
 * admin port belongs on the operators' network, not the internet. Requests
 * that come while a scrape is out share its text: with workers, each scrape
 * asks every worker for its metrics, so a flood would otherwise make every
 * worker (the consumers' event loops) collect once per request.
 */
export function metricsRoutes(scrape: () => Promise<MetricsText>): Router {
  const router = new Router()
  const scrapeShared = oneAtATime(scrape)
  router.get('/metrics', async ctx => {
    const { contentType, body } = await scrapeShared()
    ctx.type = contentType
    ctx.body = body
  })
  return router
}
