import { Agent } from 'node:http'
import { createRequire } from 'node:module'
import { Socket as Eio6Socket } from 'engine.io-client'

const require = createRequire(import.meta.url)

/** snapper-consumer@1.3.6 (engine.io-client 3, EIO=3), unchanged. */
const SnapperConsumer = require('snapper-consumer') as new (
  url: string,
  options: object,
) => SnapperConsumerInstance

interface SnapperConsumerInstance {
  consumerId: string | null
  reconnectionTime: number
  /** The engine.io-client 3 socket of the current connection. */
  connection: { transport?: { name: string } } | null
  onopen: () => void
  onclose: () => void
  onerror: (error: unknown) => void
  onmessage: (event: { type: string; data: { method?: string; params?: unknown } }) => void
  connect(): SnapperConsumerInstance
  close(): void
  request(method: string, params: unknown, callback: (err: unknown, result: unknown) => void): void
}

/** The kinds of client the delivery suites run with. */
export const CLIENT_KINDS = ['v3 default', 'v3 websocket', 'v4 default', 'v4 websocket'] as const
export type ClientKind = (typeof CLIENT_KINDS)[number]

/**
 * A consumer as a test sees it: what it received (the messages of every
 * `publish` it delivered to its application), its consumer id, its errors.
 */
export interface TestConsumer {
  readonly kind: ClientKind
  readonly messages: string[]
  /** Gap notices (JSON-RPC `gap` params), each with the number of messages received before it. */
  readonly gaps: { room: string; missed: number | null; after: number }[]
  readonly errors: unknown[]
  readonly id: string | undefined
  /** The Engine.IO transport in use now ('polling' until an upgrade). */
  readonly transport: string | undefined
  /** Resolves on open, rejects on the first error before it. */
  opened(): Promise<string>
  /** Resolves once at least `count` messages arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<void>
  /** A JSON-RPC request from the consumer (answered by the broker's echo). */
  request(method: string, params: unknown): Promise<unknown>
  close(): void
}

/** How a test consumer reaches the broker. */
export interface ConnectOptions {
  /** Connect from this loopback address (nginx's ip_hash tells clients apart by address). */
  readonly localAddress?: string
  /**
   * Reconnect this soon after a close, in ms: snapper-consumer's own timer (its default is 11-60 s);
   * engine.io-client, which does not reconnect, gets a new socket (the test's client, like an app
   * would, keeps the id of the last batch it got across sockets).
   */
  readonly reconnectMs?: number
}

export function connectConsumer(
  kind: ClientKind,
  port: number,
  token: string,
  options: ConnectOptions = {},
): TestConsumer {
  const from = options.localAddress
  const transport = from
    ? { agent: new Agent({ localAddress: from, keepAlive: true }), localAddress: from }
    : {}
  return kind.startsWith('v3')
    ? snapperConsumer(kind, port, token, transport, options.reconnectMs)
    : eio6Consumer(kind, port, token, transport, options.reconnectMs)
}

abstract class Recorder {
  abstract readonly kind: ClientKind
  readonly messages: string[] = []
  readonly gaps: { room: string; missed: number | null; after: number }[] = []
  readonly errors: unknown[] = []
  id: string | undefined
  #waiters = new Set<() => void>()
  #open: { resolve: (id: string) => void; reject: (err: unknown) => void } | undefined
  #opened: Promise<string>

  constructor() {
    this.#opened = new Promise((resolve, reject) => (this.#open = { resolve, reject }))
    this.#opened.catch(() => {}) // observed through opened()
  }

  opened(): Promise<string> {
    return this.#opened
  }

  protected didOpen(id: string): void {
    this.id = id
    this.#open?.resolve(id)
  }

  protected didFail(err: unknown): void {
    this.errors.push(err)
    this.#open?.reject(err)
  }

  protected gapped(params: unknown): void {
    for (const { room, missed } of params as { room: string; missed: number | null }[])
      this.gaps.push({ room, missed, after: this.messages.length })
  }

  protected received(messages: readonly string[]): void {
    this.messages.push(...messages)
    for (const wake of this.#waiters) wake()
  }

  waitFor(count: number, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.messages.length < count) return
        this.#waiters.delete(check)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(
          new Error(
            `${this.kind} consumer ${this.id}: waited for ${count} messages, got ${this.messages.length}`,
          ),
        )
      }, timeoutMs)
      this.#waiters.add(check)
      check()
    })
  }
}

function snapperConsumer(
  kind: ClientKind,
  port: number,
  token: string,
  transport: object,
  reconnectMs: number | undefined,
): TestConsumer {
  const consumer = new SnapperConsumer(`http://127.0.0.1:${port}`, {
    path: '/websocket',
    token,
    ...transport,
    ...(kind === 'v3 websocket' && { transports: ['websocket'] }),
  })
  const recorder = new (class extends Recorder {
    readonly kind = kind
    get transport(): string | undefined {
      return consumer.connection?.transport?.name
    }
    request(method: string, params: unknown): Promise<unknown> {
      return new Promise((resolve, reject) =>
        consumer.request(method, params, (err, result) => (err ? reject(err) : resolve(result))),
      )
    }
    close(): void {
      // snapper-consumer reconnects 11-60 s after any close, even a failed handshake: not in a test.
      consumer.connect = () => consumer
      consumer.close()
    }
    hook(): void {
      consumer.onopen = () => {
        // reconnectionTime is the client's own public field, reset to 11-60 s on every open.
        if (reconnectMs !== undefined) consumer.reconnectionTime = reconnectMs
        this.didOpen(consumer.consumerId ?? '')
      }
      consumer.onerror = err => this.didFail(err)
      consumer.onmessage = event => {
        // snapper-consumer acks a request itself and hands it over once (same id twice: once).
        if (event.type === 'request' && event.data.method === 'publish')
          this.received(event.data.params as string[])
        // Notifications, which apps that know nothing of them ignore.
        else if (event.type === 'notification' && event.data.method === 'gap') this.gapped(event.data.params)
      }
    }
  })()
  recorder.hook()
  // Before the first open too: a refused handshake schedules its reconnect with it (11-60 s by default).
  if (reconnectMs !== undefined) consumer.reconnectionTime = reconnectMs
  consumer.connect()
  return recorder
}

function eio6Consumer(
  kind: ClientKind,
  port: number,
  token: string,
  transport: object,
  reconnectMs: number | undefined,
): TestConsumer {
  const connect = (): Eio6Socket =>
    new Eio6Socket(`http://127.0.0.1:${port}`, {
      path: '/websocket',
      query: { token },
      ...transport,
      ...(kind === 'v4 websocket' && { transports: ['websocket'] }),
    })
  let socket = connect()
  let isClosed = false
  const pending = new Map<string, (result: unknown) => void>()
  // Kept across reconnects, as snapper-consumer keeps its own.
  let lastBatchId: unknown
  let requestId = 0
  const recorder = new (class extends Recorder {
    readonly kind = kind
    get transport(): string | undefined {
      return socket.transport?.name
    }
    request(method: string, params: unknown): Promise<unknown> {
      const id = `t:${++requestId}`
      socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
      return new Promise(resolve => pending.set(id, resolve))
    }
    close(): void {
      isClosed = true
      socket.close()
    }
    hook(): void {
      socket.on('open', () => this.didOpen(socket.id ?? ''))
      socket.on('error', err => {
        if (reconnectMs === undefined) this.didFail(err)
      })
      socket.on('close', () => {
        if (reconnectMs === undefined || isClosed) return
        setTimeout(() => {
          if (isClosed) return
          socket = connect()
          this.hook()
        }, reconnectMs)
      })
      socket.on('message', data => {
        const message = JSON.parse(String(data)) as {
          id?: unknown
          method?: string
          params?: unknown
          result?: unknown
        }
        if (message.method === 'publish') {
          // What snapper-consumer does: ack at once, deliver unless it is the same id again.
          socket.send(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: 'OK' }))
          if (message.id !== lastBatchId) this.received(message.params as string[])
          lastBatchId = message.id
        } else if (message.method === 'gap') {
          this.gapped(message.params)
        } else if (typeof message.id === 'string' && pending.has(message.id)) {
          pending.get(message.id)!(message.result)
          pending.delete(message.id)
        }
      })
    }
  })()
  recorder.hook()
  return recorder
}
