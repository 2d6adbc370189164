import {
  parseOpen,
  Watchdog,
  type Link,
  type LinkHandlers,
  type OpenPacket,
  type Platform,
  type WebSocketLike,
} from './link.js'

/**
 * An Engine.IO 4 session over one websocket: text frames are packets
 * (`0{open}`, `2` ping, `4<message>`, `1` close), binary frames are messages.
 * A websocket that closes before the open packet ends with `wasOpen: false`,
 * which is the consumer's cue to try polling.
 *
 * Or the upgrade of a polling session (`session`, its open packet; the URL
 * carries its sid): the websocket probes, and `opened` reports the answer;
 * `takeOver` then makes it the session's transport:
 *
 *   open ─▶ `2probe` ─▶ `3probe`: opened(session) ─▶ (polling handed over) takeOver(): `5` ─▶ messages
 *
 * In Node, `ws` drops a message past the consumer's maxReceiveBytes (its
 * maxPayload, node.ts) with an error the link reports as too large. A
 * browser's WebSocket takes messages whole: it has no such bound.
 */

/** Whether a websocket error event is `ws` refusing a message past its maxPayload. */
const isMessageTooLarge = (event: unknown): boolean =>
  (event as { error?: { code?: unknown } } | null)?.error?.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
export class WebSocketLink implements Link {
  readonly transport = 'websocket'
  readonly #url: string
  readonly #platform: Platform
  readonly #handlers: LinkHandlers
  readonly #openTimeoutMs: number
  readonly #watchdog = new Watchdog(() => this.#end(this.#isOpen ? 'ping timeout' : 'open timeout'))
  readonly #session: OpenPacket | undefined
  #ws: WebSocketLike | undefined
  #isOpen = false
  #isProbed = false
  #isDone = false

  constructor(
    url: string,
    platform: Platform,
    handlers: LinkHandlers,
    openTimeoutMs: number,
    session?: OpenPacket,
  ) {
    this.#url = url
    this.#platform = platform
    this.#handlers = handlers
    this.#openTimeoutMs = openTimeoutMs
    this.#session = session
  }

  start(): void {
    let ws: WebSocketLike
    try {
      ws = new this.#platform.WebSocket(this.#url)
    } catch (err) {
      queueMicrotask(() => this.#end(`websocket refused: ${String(err)}`))
      return
    }
    this.#ws = ws
    this.#watchdog.armForOpen(this.#openTimeoutMs)
    ws.binaryType = 'arraybuffer'
    if (this.#session) ws.onopen = () => ws.send('2probe')
    ws.onmessage = event => this.#receive(event.data)
    ws.onclose = event => this.#end(`websocket closed (${event.code})`)
    // A close follows every error, and ends the link there unless it is ended here first.
    ws.onerror = event => {
      if (isMessageTooLarge(event)) this.#end('websocket message larger than maxReceiveBytes', true)
    }
  }

  send(data: string | Uint8Array): void {
    if (this.#isOpen && !this.#isDone) this.#ws?.send(typeof data === 'string' ? `4${data}` : data)
  }

  /** After a probe answered (and the polling stopped): the session's packets come here from now on. */
  takeOver(): void {
    if (this.#isDone || !this.#isProbed || !this.#session) return
    this.#ws?.send('5')
    this.#isOpen = true
    this.#watchdog.arm(this.#session)
  }

  close(): void {
    this.#isDone = true
    this.#watchdog.stop()
    this.#ws?.close()
  }

  #receive(data: unknown): void {
    if (this.#isDone) return
    this.#watchdog.heard()
    if (typeof data !== 'string') {
      // A session's message, as `4…` is: none before the open packet (or, for a probe, the takeover).
      if (data instanceof ArrayBuffer && this.#isOpen) this.#handlers.message(new Uint8Array(data))
      return
    }
    switch (data.charAt(0)) {
      case '0': {
        const open = parseOpen(data.slice(1))
        if (!open || this.#isOpen || this.#session) return this.#end('bad open packet')
        this.#isOpen = true
        this.#watchdog.arm(open)
        return this.#handlers.opened(open)
      }
      case '2':
        this.#ws?.send('3')
        return
      case '4':
        if (this.#isOpen) this.#handlers.message(data.slice(1))
        return
      case '1':
        return this.#end('server close')
      case '3':
        if (data !== '3probe' || !this.#session || this.#isProbed) return this.#end('unexpected probe answer')
        this.#isProbed = true
        return this.#handlers.opened(this.#session)
      default:
      // noop (6) and anything unknown: nothing to do
    }
  }

  #end(reason: string, isOversized = false): void {
    if (this.#isDone) return
    this.#isDone = true
    this.#watchdog.stop()
    const ws = this.#ws
    if (ws) {
      ws.onmessage = ws.onclose = null // not onerror: `ws` throws an error event no listener takes
      ws.close()
    }
    this.#handlers.ended({ reason, wasOpen: this.#isOpen, ...(isOversized && { isOversized }) })
  }
}
