/** `snapper/consumer` in Node: websockets from the `ws` package, polling with Node's fetch. */
import WebSocket from 'ws'
import { ConsumerCore, DEFAULT_MAX_RECEIVE_BYTES, type ConsumerOptions } from './consumer.js'
import type { FetchLike, Platform, WebSocketConstructor } from './link.js'

export * from './public.js'

/** `ws` bounded to `maxPayload` bytes a message: past it, it closes with 1009 (websocket-link.ts). */
function platformOf(maxPayload: number): Platform {
  class BoundedWebSocket extends WebSocket {
    constructor(url: string) {
      super(url, { maxPayload })
    }
  }
  return {
    // ws's handler types are narrower than the part of the API the consumer uses; its behaviour is the browser's.
    WebSocket: BoundedWebSocket as unknown as WebSocketConstructor,
    fetch: fetch as FetchLike,
  }
}

export class Consumer extends ConsumerCore {
  constructor(url: string, options: ConsumerOptions) {
    // ConsumerCore refuses a bad maxReceiveBytes before any websocket is made.
    super(url, options, platformOf(options.maxReceiveBytes ?? DEFAULT_MAX_RECEIVE_BYTES))
  }
}
