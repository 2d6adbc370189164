/**
 * A lean producer on the real TCP protocol (docs/producer-protocol.md): RESP bulk
 * strings carrying JSON-RPC 2.0, an `auth` request first (HS256 JWS), then
 * pipelined `publish` notifications (as snapper-producer sends them) or
 * requests (to learn when Redis has stored them), without waiting for
 * replies in between. Backpressure is the socket's: drain() waits for it.
 */
import { connect, type Socket } from 'node:net'
import { Tokens } from '../../src/auth/token.js'
import { encodeBulk, isFramingError, RespDecoder } from '../../src/producer/resp.js'

type Pending = { resolve: (result: unknown) => void; reject: (err: Error) => void }

export class LeanProducer {
  readonly #socket: Socket
  readonly #decoder = new RespDecoder(64 << 20)
  readonly #pending = new Map<number, Pending>()
  #nextId = 0
  #closed: Error | undefined

  private constructor(socket: Socket) {
    this.#socket = socket
    socket.on('data', chunk => {
      this.#decoder.push(chunk)
      for (let frame = this.#decoder.next(); frame !== undefined; frame = this.#decoder.next()) {
        if (isFramingError(frame)) return this.#fail(new Error(`bad reply framing: ${frame.detail}`))
        const reply = JSON.parse(frame.toString()) as {
          id: number | null
          result?: unknown
          error?: { message: string }
        }
        const pending = typeof reply.id === 'number' ? this.#pending.get(reply.id) : undefined
        if (!pending) continue // an id-null error: the connection is about to close, reported below
        this.#pending.delete(reply.id as number)
        if (reply.error) pending.reject(new Error(`${reply.error.message}: ${JSON.stringify(reply.error)}`))
        else pending.resolve(reply.result)
      }
    })
    socket.on('error', err => this.#fail(err))
    socket.on('close', () => this.#fail(new Error('producer connection closed')))
  }

  /** Connects and authenticates (as producer `bench`, signed with `secret`). */
  static async connect(host: string, port: number, secret: string): Promise<LeanProducer> {
    const socket = connect({ host, port, noDelay: true })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    const producer = new LeanProducer(socket)
    const token = new Tokens([secret]).sign({ id: 'bench' })
    const ok = await producer.request('auth', [token])
    if (ok !== 'OK') throw new Error(`auth answered ${JSON.stringify(ok)}`)
    return producer
  }

  /** A `publish` notification of [room, message] pairs; false when the socket buffer is full (await drain()). */
  publish(pairs: readonly (readonly [string, string])[]): boolean {
    return this.#socket.write(
      encodeBulk(`{"jsonrpc":"2.0","method":"publish","params":${JSON.stringify(pairs)}}`),
    )
  }

  /** A request; resolves with its result. Requests are pipelined: call many without awaiting. */
  request(method: string, params: unknown): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closed)
    const id = ++this.#nextId
    this.#socket.write(encodeBulk(JSON.stringify({ jsonrpc: '2.0', id, method, params })))
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }))
  }

  /** Resolves when the socket's write buffer has room again. */
  drain(): Promise<void> {
    if (!this.#socket.writableNeedDrain) return Promise.resolve()
    return new Promise(resolve => this.#socket.once('drain', resolve))
  }

  /**
   * Resolves once everything published before is stored: a `publish` request
   * is answered after its own append, and the broker's Redis commands run in
   * the order they were sent. (An `echo` would not do: it waits for nothing.)
   */
  async settle(): Promise<void> {
    await this.request('publish', [['bench-settle', '0 0']])
  }

  close(): void {
    this.#closed ??= new Error('producer closed')
    this.#socket.destroy()
  }

  #fail(err: Error): void {
    this.#closed ??= err
    for (const pending of this.#pending.values()) pending.reject(err)
    this.#pending.clear()
  }
}
