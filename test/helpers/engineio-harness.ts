import { EventEmitter, once } from 'node:events'
import { type IncomingHttpHeaders, type OutgoingHttpHeaders, request as httpRequest } from 'node:http'
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import WebSocket from 'ws'
import { defaults } from '../../src/config/defaults.js'
import {
  type Abandoned,
  type Engine,
  type EngineHandlers,
  type EngineOptions,
  type Handshake,
  type Session,
  attachEngine,
  loadUws,
} from '../../src/gateway/engineio/server.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { pause, within } from './eventually.js'

/** The broker's own defaults, so that vectors with default timers (P3-2) check what ships. */
export const defaultOptions: EngineOptions = {
  path: '/websocket/',
  pingIntervalMs: defaults.pingIntervalMs,
  pingTimeoutMs: defaults.pingTimeoutMs,
  upgradeTimeoutMs: defaults.upgradeTimeoutMs,
  maxPayloadBytes: defaults.maxPayloadBytes,
  maxQueryBytes: defaults.maxQueryBytes,
  maxSessions: defaults.maxSessions,
  maxBackpressureBytes: defaults.consumerMaxBackpressureBytes,
  maxInputBytesPerSec: defaults.consumerMaxInputBytesPerSec,
  cookieName: 'snapper.ws',
  corsOrigins: defaults.corsOrigins,
  maxHandshakesPerAddressPerSec: defaults.maxHandshakesPerAddressPerSec,
  perAddressIpv6PrefixBits: defaults.perAddressIpv6PrefixBits,
  trustedProxies: defaults.trustedProxies,
}

export interface EchoData {
  readonly n: number
  readonly greet: string | null
  /** `delay=<ms>`: prepare() takes that long. */
  readonly delayMs: number | undefined
  /** `gate=1`: prepare() waits for openGate(). */
  readonly isGated: boolean
}

export interface Closed {
  readonly id: string
  readonly reason: string
}

/**
 * An echo server on port 0: `token=good` is accepted (id from `id=` or a
 * counter), anything else refused with 403 code 4 "bad token"; `delay=<ms>`
 * makes prepare() take that long, so the session opens (and the polling
 * handshake is answered) that long after; `gate=1` once the test calls
 * openGate(). Text messages
 * come back as `echo:<text>`, binary ones as they are. `greet=<text>` makes
 * open() send a message right after the open packet. Other paths answer 404.
 */
export interface EchoServer {
  readonly port: number
  readonly base: string
  readonly engine: Engine<EchoData>
  readonly opened: Array<{ id: string; replaced: boolean }>
  readonly closed: Closed[]
  readonly received: Array<string | Buffer>
  readonly handshakes: Handshake[]
  /** Authorizations that never became sessions. */
  readonly abandoned: EchoData[]
  /** The signal each prepare() got, in arrival order: aborted when its client went away. */
  readonly preparing: Abandoned[]
  /** Resolves with the close reason of the next (or an already recorded, unclaimed) close of `id`. */
  closeOf(id: string): Promise<string>
  openOf(id: string): Promise<Session<EchoData>>
  /**
   * Resolves once the engine has handled the next GET (or POST) request. A held
   * poll shows no other sign of having arrived; call this before sending.
   */
  handled(method: 'get' | 'post'): Promise<void>
  /** Lets every `gate=1` session preparing so far open, in arrival order. */
  openGate(): void
  url(query: string, scheme?: 'http' | 'ws'): string
  stop(): Promise<void>
}

export function startEcho(
  overrides: Partial<EngineOptions> = {},
  handlerOverrides: Partial<EngineHandlers<EchoData>> = {},
): Promise<EchoServer> {
  return startEchoWith({ ...defaultOptions, ...overrides }, handlerOverrides)
}

/** An echo server on `options` as given, not a copy: two servers may share one options object. */
export async function startEchoWith(
  options: EngineOptions,
  handlerOverrides: Partial<EngineHandlers<EchoData>> = {},
): Promise<EchoServer> {
  const uWS = loadUws()
  const app: TemplatedApp = uWS.App()
  const events = new EventEmitter()
  const opened: EchoServer['opened'] = []
  const closed: Closed[] = []
  const received: Array<string | Buffer> = []
  const handshakes: Handshake[] = []
  const abandoned: EchoData[] = []
  const preparing: Abandoned[] = []
  const gated: Array<() => void> = []
  let counter = 0
  // A spy ahead of the engine's `any` route: it yields, so uWS hands the request on to the engine.
  for (const method of ['get', 'post'] as const)
    app[method]('/websocket/*', (_res, req) => {
      req.setYield(true)
      setImmediate(() => events.emit(`handled:${method}`))
    })
  const engine = attachEngine<EchoData>(app, options, {
    authorize(handshake) {
      handshakes.push(handshake)
      if (handshake.query.get('token') !== 'good')
        return { ok: false, status: 403, code: 4, message: 'bad token' }
      counter++
      const data = {
        n: counter,
        greet: handshake.query.get('greet'),
        delayMs: handshake.query.has('delay') ? Number(handshake.query.get('delay')) : undefined,
        isGated: handshake.query.has('gate'),
      }
      return { ok: true, id: handshake.query.get('id') ?? `sid-${counter}`, data }
    },
    // `delay=<ms>`: the session opens that long after, like a hook that asks Redis first; `gate=1`: when the test says so.
    prepare(data, gone) {
      preparing.push(gone)
      if (data.isGated) return new Promise(resolve => gated.push(resolve))
      return data.delayMs === undefined ? Promise.resolve() : sleep(data.delayMs).then(() => {})
    },
    abandon(data) {
      abandoned.push(data)
      events.emit('abandon', data)
    },
    open(session, replaced) {
      opened.push({ id: session.id, replaced: replaced !== undefined })
      if (session.data.greet !== null) session.send(session.data.greet)
      events.emit(`open:${session.id}`, session)
    },
    message(session, data) {
      received.push(data)
      if (typeof data === 'string') session.send(`echo:${data}`)
      else session.sendBinary(data)
    },
    close(session, reason) {
      closed.push({ id: session.id, reason })
      events.emit(`close:${session.id}`, reason)
    },
    ...handlerOverrides,
  })
  app.any('/*', res => {
    res.writeStatus('404 Not Found').end('not engine.io')
  })
  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) =>
    app.listen('127.0.0.1', 0, socket => (socket ? resolve(socket) : reject(new Error('listen failed')))),
  )
  const port = uWS.us_socket_local_port(listenSocket)
  const claimed = new Set<Closed>()
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    engine,
    opened,
    closed,
    received,
    handshakes,
    abandoned,
    preparing,
    async closeOf(id) {
      const seen = closed.find(entry => entry.id === id && !claimed.has(entry))
      if (seen !== undefined) {
        claimed.add(seen)
        return seen.reason
      }
      const [reason] = (await within(once(events, `close:${id}`), 10_000, `session ${id} to close`)) as [
        string,
      ]
      const entry = closed.find(item => item.id === id && !claimed.has(item))
      if (entry !== undefined) claimed.add(entry)
      return reason
    },
    async openOf(id) {
      const session = engine.sessions.get(id)
      if (session !== undefined) return session
      const [opened] = (await within(once(events, `open:${id}`), 10_000, `session ${id} to open`)) as [
        Session<EchoData>,
      ]
      return opened
    },
    openGate() {
      for (const release of gated.splice(0)) release()
    },
    async handled(method) {
      await within(once(events, `handled:${method}`), 10_000, `a ${method} request to be handled`)
    },
    url(query, scheme = 'http') {
      return `${scheme}://127.0.0.1:${port}/websocket/?${query}`
    },
    async stop() {
      engine.close()
      uWS.us_listen_socket_close(listenSocket)
      // Not in this fork's typings: closes every connection still open.
      ;(app as unknown as { close(): void }).close()
    },
  }
}

/** A raw websocket and the messages it received, text as strings, binary as Buffers. */
export interface RawSocket {
  readonly ws: WebSocket
  readonly messages: Array<string | Buffer>
  /** The next message not yet taken. */
  next(): Promise<string | Buffer>
  /** The close code, once closed. */
  closed: Promise<number>
}

export async function openSocket(url: string, options?: WebSocket.ClientOptions): Promise<RawSocket> {
  const ws = new WebSocket(url, options)
  const messages: Array<string | Buffer> = []
  const inbox = new EventEmitter()
  let taken = 0
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    messages.push(isBinary ? data : data.toString())
    inbox.emit('message')
  })
  let closeReason = ''
  ws.on('error', err => (closeReason = err.message))
  const closed = new Promise<number>(resolve =>
    ws.once('close', (code, reason) => {
      closeReason = `code ${code} ${reason.toString()} ${closeReason}`
      resolve(code)
    }),
  )
  await within(once(ws, 'open'), 10_000, `a websocket to open: ${url}`)
  return {
    ws,
    messages,
    closed,
    async next() {
      while (taken >= messages.length) {
        const result = await within(
          Promise.race([once(inbox, 'message'), closed.then(() => 'closed' as const)]),
          30_000,
          'a message or the close of the socket',
        )
        if (result === 'closed' && taken >= messages.length)
          throw new Error(`socket closed before a message: ${closeReason}`)
      }
      return messages[taken++]!
    },
  }
}

/** Rejects a websocket upgrade and resolves with the raw status and body the server answered. */
export async function refusedUpgrade(
  url: string,
  options?: WebSocket.ClientOptions,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const ws = new WebSocket(url, options)
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.terminate()
      reject(new Error('upgrade unexpectedly accepted'))
    })
    ws.on('error', () => {}) // unexpected-response below says it all
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      res.on('error', reject)
    })
  })
}

export interface RawResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
  readonly text: string
}

export interface RawRequest {
  readonly method?: string
  /** Sent as separate writes, a few ms apart, so the server reads them as separate chunks. */
  readonly body?: string | Buffer | ReadonlyArray<string | Buffer>
  readonly headers?: OutgoingHttpHeaders
  readonly signal?: AbortSignal
  /** Send from this loopback address (Linux: any of 127.0.0.0/8), to be another client. */
  readonly localAddress?: string
}

/** One request on its own connection (no keep-alive pool), the body as bytes. */
export async function request(url: string, init: RawRequest = {}): Promise<RawResponse> {
  const parts =
    init.body === undefined
      ? []
      : typeof init.body === 'string' || Buffer.isBuffer(init.body)
        ? [init.body]
        : init.body
  const length = parts.reduce((sum, part) => sum + Buffer.byteLength(part), 0)
  const headers: OutgoingHttpHeaders = { ...init.headers }
  if (init.body !== undefined && headers['transfer-encoding'] === undefined)
    headers['content-length'] ??= length
  const req = httpRequest(url, {
    method: init.method ?? 'GET',
    headers,
    agent: false,
    signal: init.signal,
    localAddress: init.localAddress,
  })
  const response = new Promise<RawResponse>((resolve, reject) => {
    req.on('error', reject)
    req.on('response', res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString() })
      })
    })
  })
  req.flushHeaders()
  for (const [i, part] of parts.entries()) {
    if (i > 0) await pause(5) // parts arrive apart, not coalesced
    req.write(part)
  }
  req.end()
  return response
}
