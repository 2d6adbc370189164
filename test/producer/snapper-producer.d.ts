// The published client ships no types; this is the part our tests use (lib/index.js of 2.1.1).
declare module 'snapper-producer' {
  import { EventEmitter } from 'node:events'

  /** toa-net's thunk: call it with a Node-style callback to send the request. */
  type Thunk<T> = (
    callback: (err: (Error & { code?: number; data?: unknown }) | null, result: T) => void,
  ) => void

  interface ProducerOptions {
    secretKeys: string | string[]
    producerId: string
    expiresIn?: number
  }

  class Producer extends EventEmitter {
    constructor(port: number, host: string, options: ProducerOptions)
    constructor(port: number, options: ProducerOptions)
    /** toa-net's client socket; `closed` is true once destroyed (then it never reconnects). */
    readonly conn: { readonly closed: boolean; readonly connected: boolean }
    signAuth(payload: Record<string, unknown>): string
    sendMessage(room: string, message: string): this
    joinRoom(room: unknown, consumerId: unknown): Thunk<unknown>
    leaveRoom(room: unknown, consumerId: unknown): Thunk<unknown>
    request(method: string, params?: unknown): Thunk<unknown>
    close(): void
  }
  export default Producer
}
