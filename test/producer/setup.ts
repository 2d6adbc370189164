/**
 * What the producer tests share: a listener on port 0 over the real
 * Redis-backed ProducerApi (own key prefix per test, torn down with it), the
 * real snapper-producer client, and a raw socket that reads exact bytes.
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { ExecutionContext } from 'ava'
import type { Redis } from 'ioredis'
import Producer from 'snapper-producer'
import { tokensOf, type Tokens } from '../../src/auth/token.js'
import { createBrokerCore, type BrokerCore } from '../../src/broker/core.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { silentLogger, type Logger } from '../../src/log.js'
import { createProducerListener, type ProducerListener } from '../../src/producer/listener.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { Keys } from '../../src/redis/keys.js'
import { docVectors, wireText } from '../helpers/doc-vectors.js'
import { within } from '../helpers/eventually.js'
import { uniquePrefix, type RedisServer } from '../helpers/redis.js'

export const SECRET = 'tokenSecretXXX'

/** The auth vectors of docs/producer-protocol.md §4: a request signed with SECRET (exp 2100-01-01, id k5uu:1), its answer. */
const [authRequest, authAnswer] = docVectors('producer-protocol', 'auth')
export const AUTH_FRAME = wireText(authRequest![1])
export const AUTH_OK = wireText(authAnswer![1])

export interface Harness {
  readonly port: number
  readonly listener: ProducerListener
  readonly keys: Keys
  /** A plain Redis client for assertions. */
  readonly redis: Redis
  readonly tokens: Tokens
  /** The messages of a room's log, oldest first, with their seqs. */
  roomLog(room: string): Promise<{ seq: number; message: string }[]>
  /** A snapper-producer client (producerId 'test' unless given), closed at teardown; resolves once authenticated. */
  producer(options?: { secret?: string; wait?: boolean; producerId?: string }): Promise<Producer>
  /** A raw socket (from `localAddress`, default 127.0.0.1), destroyed at teardown. */
  raw(localAddress?: string): Promise<RawClient>
  /** A raw socket that has authenticated with AUTH_FRAME (id prod-1), or with a token of `producerId`. */
  rawAuthed(producerId?: string): Promise<RawClient>
}

/** A listener with its own prefix on `server`; everything is closed when the test ends. */
export async function startListener(
  t: ExecutionContext,
  server: RedisServer,
  overrides: Partial<Config> = {},
  logger: Logger = silentLogger,
): Promise<Harness> {
  const config: Config = { ...defaults, redisPrefix: uniquePrefix(), tokenSecrets: [SECRET], ...overrides }
  const clients = createRedisClients({ kind: 'standalone', url: server.url }, silentLogger)
  await clients.connect(5000)
  const core = createBrokerCore(config, clients, silentLogger)
  const tokens = tokensOf(config)
  const listener = createProducerListener({ config, tokens, api: core.producerApi, logger })
  const port = await listener.listen(0, '127.0.0.1')
  const redis = server.client()
  const closers: (() => void)[] = []
  const raw = async (localAddress?: string): Promise<RawClient> => {
    const client = await RawClient.connect(port, localAddress)
    closers.push(() => client.socket.destroy())
    return client
  }
  t.teardown(async () => {
    for (const close of closers) close()
    await listener.close()
    await clients.quit()
    redis.disconnect()
  })

  return {
    port,
    listener,
    keys: core.keys,
    redis,
    tokens,
    async roomLog(room) {
      const entries = await redis.xrange(core.keys.room(room).log, '-', '+')
      return entries.map(([id, fields]) => ({ seq: Number(id.split('-')[1]), message: fields[1]! }))
    },
    async producer({ secret = SECRET, wait = true, producerId = 'test' } = {}) {
      const producer = new Producer(port, '127.0.0.1', { secretKeys: [secret], producerId })
      closers.push(() => producer.close())
      if (wait) await within(once(producer, 'connect'), 10_000, 'the producer to connect')
      return producer
    },
    raw,
    async rawAuthed(producerId) {
      const client = await raw()
      // The same request id as AUTH_FRAME, so the same answer.
      client.send(
        producerId === undefined ? AUTH_FRAME : request('k5uu:1', 'auth', [tokens.sign({ id: producerId })]),
      )
      t.is(await client.read(AUTH_OK.length), AUTH_OK)
      return client
    },
  }
}

/** A producer listener over `core` and a raw socket authenticated to it, both closed at teardown. */
export async function authedRawProducer(
  t: ExecutionContext,
  core: BrokerCore,
  config: Config,
): Promise<{ listener: ProducerListener; producer: RawClient }> {
  const tokens = tokensOf(config)
  const listener = createProducerListener({ config, tokens, api: core.producerApi, logger: silentLogger })
  const port = await listener.listen(0, '127.0.0.1')
  t.teardown(() => listener.close())
  const producer = await RawClient.connect(port)
  t.teardown(() => producer.socket.destroy())
  producer.send(AUTH_FRAME)
  t.is(await producer.expect(AUTH_OK), AUTH_OK)
  return { listener, producer }
}

/** Sends a toa-net thunk request and awaits its answer. */
export function call<T = unknown>(thunk: ReturnType<Producer['request']>): Promise<T> {
  return new Promise<T>((resolve, reject) =>
    thunk((err, result) => (err ? reject(err) : resolve(result as T))),
  )
}

/** A socket that collects what it receives and hands it out by exact length. */
export class RawClient {
  readonly socket: Socket
  #received = Buffer.alloc(0)
  #isEnded = false
  #waiter: (() => void) | undefined

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', chunk => {
      this.#received = Buffer.concat([this.#received, chunk])
      this.#wake()
    })
    socket.on('end', () => {
      this.#isEnded = true
      this.#wake()
    })
    socket.on('error', () => this.#wake()) // a reset shows as the end of input below
    socket.on('close', () => {
      this.#isEnded = true
      this.#wake()
    })
  }

  /** @param localAddress the client's own address: any of 127.0.0.0/8 on Linux, to be another peer */
  static async connect(port: number, localAddress?: string): Promise<RawClient> {
    const socket = connect({ port, host: '127.0.0.1', localAddress })
    await within(once(socket, 'connect'), 10_000, `a connection to port ${port}`)
    return new RawClient(socket)
  }

  send(data: string | Buffer): void {
    this.socket.write(data)
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.#received.length
  }

  /** Exactly `bytes` bytes, as UTF-8 text; rejects if the server ends first. */
  async read(bytes: number): Promise<string> {
    while (this.#received.length < bytes) {
      if (this.#isEnded)
        throw new Error(`ended after ${this.#received.length} of ${bytes} bytes: ${this.#received}`)
      await new Promise<void>(resolve => (this.#waiter = resolve))
    }
    const text = this.#received.subarray(0, bytes).toString()
    this.#received = this.#received.subarray(bytes)
    return text
  }

  /** Reads exactly the bytes of `expected` (a frame) and returns them for t.is. */
  expect(expected: string): Promise<string> {
    return this.read(Buffer.byteLength(expected))
  }

  /** Resolves when the server has ended the connection; returns what came before the end, unread. */
  async ended(): Promise<string> {
    while (!this.#isEnded) await new Promise<void>(resolve => (this.#waiter = resolve))
    const rest = this.#received.toString()
    this.#received = Buffer.alloc(0)
    return rest
  }

  get isEnded(): boolean {
    return this.#isEnded
  }

  /** An echo round trip: proves this connection is still served, and that nothing else was answered before it. */
  async echo(id: string): Promise<string> {
    const request = `{"jsonrpc":"2.0","id":"${id}","method":"echo","params":["${id}"]}`
    this.send(frame(request))
    return this.expect(frame(`{"jsonrpc":"2.0","id":"${id}","result":["${id}"]}`))
  }

  #wake(): void {
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.()
  }
}

/** A RESP bulk frame around a text, with its UTF-8 byte length. */
export const frame = (payload: string): string => `$${Buffer.byteLength(payload)}\r\n${payload}\r\n`

/** The frame of an error reply, key order as the broker writes it. */
export const error = (id: string | null, message: string, code: number, data?: unknown): string =>
  frame(
    JSON.stringify({
      jsonrpc: '2.0',
      id,
      error: data === undefined ? { message, code } : { message, code, data },
    }),
  )
export const request = (id: string, method: string, params?: unknown): string =>
  frame(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
export const notification = (method: string, params?: unknown): string =>
  frame(JSON.stringify({ jsonrpc: '2.0', method, params }))
