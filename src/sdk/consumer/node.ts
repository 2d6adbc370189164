/** `snapper/consumer` in Node: websockets from the `ws` package, polling with Node's fetch. */
import WebSocket from 'ws'
import { ConsumerCore, type ConsumerOptions } from './consumer.js'
import type { FetchLike, Platform, WebSocketConstructor } from './link.js'

export * from './public.js'

const platform: Platform = {
  // ws's handler types are narrower than the part of the API the consumer uses; its behaviour is the browser's.
  WebSocket: WebSocket as unknown as WebSocketConstructor,
  fetch: fetch as FetchLike,
}

export class Consumer extends ConsumerCore {
  constructor(url: string, options: ConsumerOptions) {
    super(url, options, platform)
  }
}
