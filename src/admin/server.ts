import { createServer, type Server } from 'node:http'
import type Koa from 'koa'
import type { Config } from '../config/defaults.js'

/**
 * The admin app's HTTP server. Its port may be reachable by strangers, and
 * its process (the primary) also takes the producer connections, so it
 * holds at most adminMaxConnections, and a request that has not arrived in
 * full within adminRequestTimeoutMs gets 408 and is closed: silent or
 * trickling connections cannot use up the process's open files.
 */
export function createAdminServer(
  app: Koa,
  config: Pick<Config, 'adminMaxConnections' | 'adminRequestTimeoutMs'>,
): Server {
  const timeoutMs = config.adminRequestTimeoutMs
  const server = createServer(
    {
      requestTimeout: timeoutMs,
      headersTimeout: timeoutMs,
      // How often Node looks for requests past their timeout: 30 s by default, which would
      // hold a connection up to 30 s past a short timeout.
      connectionsCheckingInterval: Math.min(1000, timeoutMs),
    },
    app.callback(),
  )
  server.maxConnections = config.adminMaxConnections
  return server
}
