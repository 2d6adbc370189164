/**
 * An outbox's rooms by name: the subset of a Map that Outbox and
 * OutboxCursors use. Its first room is held in two fields, a Map is made only
 * at the second: most consumers are in one room (their own) for their
 * session's life, and a Map is about 180 bytes with its table
 * (docs/performance.md, section 1, item 23). Once made, the Map stays.
 * Iterates in insertion order, as a Map does.
 */
export class RoomMap<V> implements Iterable<[string, V]> {
  /** The only room, while there is no Map; undefined when there is none. */
  #room: string | undefined
  #value: V | undefined
  #map: Map<string, V> | undefined

  get size(): number {
    return this.#map?.size ?? (this.#room === undefined ? 0 : 1)
  }

  get(room: string): V | undefined {
    if (this.#map !== undefined) return this.#map.get(room)
    return room === this.#room ? this.#value : undefined
  }

  has(room: string): boolean {
    return this.#map !== undefined ? this.#map.has(room) : room === this.#room
  }

  set(room: string, value: V): void {
    if (this.#map !== undefined) this.#map.set(room, value)
    else if (this.#room === undefined || this.#room === room) {
      this.#room = room
      this.#value = value
    } else {
      this.#map = new Map([
        [this.#room, this.#value as V],
        [room, value],
      ])
      this.#room = undefined
      this.#value = undefined
    }
  }

  delete(room: string): boolean {
    if (this.#map !== undefined) return this.#map.delete(room)
    if (this.#room === undefined || room !== this.#room) return false
    this.#room = undefined
    this.#value = undefined
    return true
  }

  *keys(): IterableIterator<string> {
    if (this.#map !== undefined) yield* this.#map.keys()
    else if (this.#room !== undefined) yield this.#room
  }

  *[Symbol.iterator](): IterableIterator<[string, V]> {
    if (this.#map !== undefined) yield* this.#map
    else if (this.#room !== undefined) yield [this.#room, this.#value as V]
  }
}
