/**
 * `snapper/consumer` in browsers (and the bundle the admin app serves at
 * /sdk/consumer.js): the page's own WebSocket and fetch.
 */
import { ConsumerCore, type ConsumerOptions } from './consumer.js'
import type { FetchLike, Platform, WebSocketConstructor } from './link.js'

export * from './public.js'

const globals = globalThis as unknown as { WebSocket?: WebSocketConstructor; fetch?: FetchLike }

export class Consumer extends ConsumerCore {
  constructor(url: string, options: ConsumerOptions) {
    if (!globals.WebSocket || !globals.fetch)
      throw new TypeError('Consumer: this runtime has no WebSocket or fetch')
    const platform: Platform = { WebSocket: globals.WebSocket, fetch: globals.fetch.bind(globalThis) }
    super(url, options, platform)
  }
}
