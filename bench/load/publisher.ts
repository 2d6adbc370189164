/**
 * One logical producer for a scenario: a LeanProducer connection to one node
 * (Snapper, Socket.IO: Redis carries the message to the other nodes), or to
 * every node (the uWS ceiling shares nothing, so each process gets it all).
 */
import type { RunningTarget } from '../servers/targets.js'
import { LeanProducer } from './producer.js'

/** Subscribe requests in flight at once while joining many consumers. */
const JOIN_WINDOW = 256

export class Publisher {
  readonly #connections: LeanProducer[]

  private constructor(connections: LeanProducer[]) {
    this.#connections = connections
  }

  /** Producer number `index` of this scenario. */
  static async open(target: RunningTarget, index = 0): Promise<Publisher> {
    const nodes = target.publishesToAll ? target.producerPorts.map((_, i) => i) : [index]
    return new Publisher(await Promise.all(nodes.map(node => target.producer(node))))
  }

  /** A `publish` notification; false when a socket buffer is full (await drain()). */
  publish(pairs: readonly (readonly [string, string])[]): boolean {
    let hasRoom = true
    for (const connection of this.#connections) hasRoom = connection.publish(pairs) && hasRoom
    return hasRoom
  }

  /** A `publish` request: resolves with the count accepted, once stored (Snapper) or fanned out (peers). */
  async publishStored(pairs: readonly (readonly [string, string])[]): Promise<number> {
    const counts = await Promise.all(
      this.#connections.map(connection => connection.request('publish', pairs)),
    )
    return Number(counts[0] ?? 0)
  }

  drain(): Promise<void> {
    return Promise.all(this.#connections.map(connection => connection.drain())).then(() => {})
  }

  /** Everything published before is stored (Snapper) or handed to Socket.IO/uWS. */
  settle(): Promise<void> {
    return Promise.all(this.#connections.map(connection => connection.settle())).then(() => {})
  }

  /** Joins consumers to a room with `subscribe` requests, pipelined. */
  async subscribe(room: string, consumerIds: readonly string[]): Promise<void> {
    const connection = this.#connections[0]!
    for (let start = 0; start < consumerIds.length; start += JOIN_WINDOW) {
      const ids = consumerIds.slice(start, start + JOIN_WINDOW)
      await Promise.all(ids.map(id => connection.request('subscribe', [room, id])))
    }
  }

  close(): void {
    for (const connection of this.#connections) connection.close()
  }
}
