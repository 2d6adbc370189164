import {
  fromBase64,
  parseOpen,
  toBase64,
  Watchdog,
  type Link,
  type LinkHandlers,
  type Platform,
  type FetchResponse,
  type Refusal,
} from './link.js'

/** What a body larger than the consumer's maxReceiveBytes reads as: nothing (its reading is dropped). */
const OVERSIZED = Symbol('oversized')

/** v4 payload separator (ASCII record separator). */
const SEPARATOR = '\x1e'

/**
 * An Engine.IO 4 session over HTTP long-polling, with fetch:
 *
 *   GET (handshake) ─▶ GET ─▶ GET ...   one held at a time; each answer is packets joined by \x1e
 *   send() ─▶ queue ─▶ POST             one at a time; what queues meanwhile goes in the next
 *
 * Binary messages travel as `b<base64>` packets both ways. A handshake
 * answered with an error status ends the link with its refusal, so the
 * consumer can tell a bad token (stop) from a full node (come back later).
 * When a websocket takes the session over (an upgrade), `handOver` stops
 * the polling once the held GET and the POSTs have come back, without
 * closing the session. No answer is read past `maxReceiveBytes`: one larger
 * ends the link (a protocol error), as a websocket message that large does.
 * A POST not answered within the heartbeat (pingInterval + pingTimeout) ends
 * it too: the server takes a session whose pongs do not come for dead, and
 * what would queue behind that POST meanwhile is not held without bound.
 */
export class PollingLink implements Link {
  readonly transport = 'polling'
  readonly #url: string
  readonly #platform: Platform
  readonly #handlers: LinkHandlers
  readonly #openTimeoutMs: number
  readonly #maxReceiveBytes: number
  readonly #abort = new AbortController()
  readonly #watchdog = new Watchdog(() =>
    this.#end(this.#sid === undefined ? 'open timeout' : 'ping timeout'),
  )
  #sid: string | undefined
  /** The open packet's pingInterval + pingTimeout: how long a POST may take. */
  #postTimeoutMs = 0
  #outbox: string[] = []
  /** A pong waits in #outbox: a second says no more than it (a server sending pings in bulk). */
  #isPongQueued = false
  #isPosting = false
  #isDone = false
  /** A websocket is taking the session over: no new GET, and handOver() resolves once the last one and the POSTs are back. */
  #handingOver: { resolve(isHandedOver: boolean): void } | undefined
  #isPolling = false

  constructor(
    url: string,
    platform: Platform,
    handlers: LinkHandlers,
    openTimeoutMs: number,
    maxReceiveBytes: number,
  ) {
    this.#url = url
    this.#platform = platform
    this.#handlers = handlers
    this.#openTimeoutMs = openTimeoutMs
    this.#maxReceiveBytes = maxReceiveBytes
  }

  start(): void {
    this.#watchdog.armForOpen(this.#openTimeoutMs)
    void this.#poll()
  }

  send(data: string | Uint8Array): void {
    if (this.#isDone || this.#sid === undefined) return
    this.#outbox.push(typeof data === 'string' ? `4${data}` : `b${toBase64(data)}`)
    if (!this.#isPosting) void this.#post()
  }

  /**
   * Stops polling for an upgrade: resolves true once the held GET came back
   * (the server releases it when the probe starts) and its packets were
   * handled, and every queued send was POSTed; the link is then done, the
   * session left open for the websocket. False if the link ended first.
   */
  handOver(): Promise<boolean> {
    if (this.#isDone) return Promise.resolve(false)
    return new Promise(resolve => {
      this.#handingOver = { resolve }
      this.#settleHandOver()
    })
  }

  /**
   * Cancels a hand-over whose websocket failed: polling goes on. False if
   * the link is done (handed over already, or ended).
   */
  resume(): boolean {
    if (this.#isDone) return false
    this.#handingOver?.resolve(false)
    this.#handingOver = undefined
    if (!this.#isPolling) void this.#poll() // the loop stopped after its last GET
    return true
  }

  /** Completes a hand-over once nothing is in flight. */
  #settleHandOver(): void {
    if (!this.#handingOver || this.#isDone || this.#isPolling || this.#isPosting) return
    this.#isDone = true
    this.#watchdog.stop()
    this.#handingOver.resolve(true)
  }

  close(): void {
    if (this.#isDone) return
    this.#isDone = true
    this.#watchdog.stop()
    this.#handingOver?.resolve(false)
    // Tell the server now rather than let it time the session out; nobody waits for the answer.
    if (this.#sid !== undefined)
      this.#platform
        .fetch(this.#sessionUrl(), { method: 'POST', body: '1', headers: { 'Content-Type': 'text/plain' } })
        .catch(() => {}) // the session is being dropped either way
    this.#abort.abort()
  }

  #sessionUrl(): string {
    const url = new URL(this.#url)
    if (this.#sid !== undefined) url.searchParams.set('sid', this.#sid)
    return url.href
  }

  async #poll(): Promise<void> {
    while (!this.#isDone && !this.#handingOver) {
      let body: string | typeof OVERSIZED
      this.#isPolling = true
      try {
        // The gateway answers polls with Cache-Control: no-store.
        const response = await this.#platform.fetch(this.#sessionUrl(), { signal: this.#abort.signal })
        if (response.status !== 200) {
          const refusal =
            this.#sid === undefined ? await readRefusal(response, this.#maxReceiveBytes) : undefined
          return this.#end(`poll answered ${response.status}`, refusal)
        }
        body = await readBounded(response, this.#maxReceiveBytes)
      } catch (err) {
        return this.#end(`poll failed: ${String(err)}`)
      } finally {
        this.#isPolling = false
      }
      if (body === OVERSIZED) return this.#endOversized('poll answer')
      for (const packet of body.split(SEPARATOR)) {
        this.#receive(packet)
        if (this.#isDone) return
      }
    }
    this.#settleHandOver()
  }

  #receive(packet: string): void {
    this.#watchdog.heard()
    // Anything else ends the link, as in engine.io-client: skipped, an answer with no packet we know (an
    // HTML page from a proxy, an empty body) would be polled again at once, hundreds of times a second.
    const type = packet.charAt(0)
    if (this.#sid === undefined && type !== '0') return this.#end('bad packet')
    switch (type) {
      case '0': {
        const open = parseOpen(packet.slice(1))
        if (!open || this.#sid !== undefined) return this.#end('bad open packet')
        this.#sid = open.sid
        this.#postTimeoutMs = open.pingIntervalMs + open.pingTimeoutMs
        this.#watchdog.arm(open)
        return this.#handlers.opened(open)
      }
      case '2':
        if (!this.#isPongQueued) this.#outbox.push('3')
        this.#isPongQueued = true
        if (!this.#isPosting) void this.#post()
        return
      case '4':
        return this.#handlers.message(packet.slice(1))
      case 'b': {
        let bytes: Uint8Array
        try {
          bytes = fromBase64(packet.slice(1))
        } catch {
          // atob throws on a character outside base64: out of this async loop it would be an unhandled rejection.
          return this.#end('bad binary packet (not base64)')
        }
        return this.#handlers.message(bytes)
      }
      case '1':
        return this.#end('server close')
      case '3': // pong, upgrade: nothing to do
      case '5':
      case '6': // noop: the server released the GET; poll again
        return
      default:
        return this.#end('bad packet')
    }
  }

  async #post(): Promise<void> {
    this.#isPosting = true
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      while (this.#outbox.length > 0 && !this.#isDone) {
        const body = this.#outbox.join(SEPARATOR)
        this.#outbox = []
        this.#isPongQueued = false
        const timeoutMs = this.#postTimeoutMs
        timer = setTimeout(() => this.#end(`post not answered within ${timeoutMs} ms`), timeoutMs)
        const response = await this.#platform.fetch(this.#sessionUrl(), {
          method: 'POST',
          body,
          headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
          signal: this.#abort.signal,
        })
        const answer = await readBounded(response, this.#maxReceiveBytes)
        clearTimeout(timer)
        if (answer === OVERSIZED) return this.#endOversized('post answer')
        if (response.status !== 200) return this.#end(`post answered ${response.status}`)
      }
    } catch (err) {
      this.#end(`post failed: ${String(err)}`)
    } finally {
      clearTimeout(timer)
      this.#isPosting = false
    }
    this.#settleHandOver()
  }

  #endOversized(what: string): void {
    this.#end(`${what} larger than maxReceiveBytes (${this.#maxReceiveBytes})`, undefined, true)
  }

  #end(reason: string, refusal?: Refusal, isOversized = false): void {
    if (this.#isDone) return
    this.#isDone = true
    this.#watchdog.stop()
    this.#abort.abort() // also drops a body left unread
    this.#handingOver?.resolve(false)
    const wasOpen = this.#sid !== undefined
    this.#handlers.ended({
      reason,
      wasOpen,
      ...(refusal && { refusal }),
      ...(isOversized && { isOversized }),
    })
  }
}

/**
 * A response's body as text, read as it comes, or OVERSIZED as soon as it
 * is known to exceed `maxBytes` (its Content-Length, or the bytes read):
 * text() would hold all of it, however large, in the application's memory.
 */
async function readBounded(response: FetchResponse, maxBytes: number): Promise<string | typeof OVERSIZED> {
  if (Number(response.headers.get('content-length')) > maxBytes) return OVERSIZED
  const reader = response.body?.getReader()
  if (!reader) return response.text() // no stream (a 204, a fetch without one): nothing to hold
  const decoder = new TextDecoder()
  let text = ''
  for (let bytes = 0; ;) {
    const { done, value } = await reader.read()
    if (done || !value) return text + decoder.decode()
    bytes += value.byteLength
    if (bytes > maxBytes) {
      reader.cancel().catch(() => {}) // the link's abort ends it too
      return OVERSIZED
    }
    text += decoder.decode(value, { stream: true })
  }
}

/** The status, message and `retryAfterMs` (or Retry-After) of a refused handshake. */
async function readRefusal(response: FetchResponse, maxBytes: number): Promise<Refusal> {
  let message = `HTTP ${response.status}`
  let retryAfterMs: number | undefined
  try {
    const text = await readBounded(response, maxBytes)
    // An error page too large to read says no more than its status does.
    const body = (text === OVERSIZED ? {} : JSON.parse(text)) as { message?: unknown; retryAfterMs?: unknown }
    if (typeof body.message === 'string') message = body.message
    if (typeof body.retryAfterMs === 'number' && body.retryAfterMs >= 0) retryAfterMs = body.retryAfterMs
  } catch {
    // No JSON body (a proxy's error page): the status says enough.
  }
  const header = Number(response.headers.get('retry-after'))
  if (retryAfterMs === undefined && header > 0) retryAfterMs = header * 1000
  return { status: response.status, message, retryAfterMs }
}
