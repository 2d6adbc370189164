/**
 * A FIFO queue whose entries can also be found and taken out by key, each in
 * constant time: the producer's calls waiting for a slot, which time out one
 * by one from anywhere in it. Not an array, whose shift() and splice() copy
 * it once it holds some 30,000 entries; nor a Map walked from its start,
 * which steps over every entry deleted there: both are quadratic in a long
 * queue (a burst of calls past maxInFlight, a broker out of reach).
 */
interface Node<T> {
  readonly value: T
  prev: Node<T> | undefined
  next: Node<T> | undefined
}

export class KeyedQueue<K, T> {
  readonly #nodes = new Map<K, Node<T>>()
  #head: Node<T> | undefined
  #tail: Node<T> | undefined

  get size(): number {
    return this.#nodes.size
  }

  /** The entry that goes next. */
  get first(): T | undefined {
    return this.#head?.value
  }

  get(key: K): T | undefined {
    return this.#nodes.get(key)?.value
  }

  /** Adds `value` last. */
  push(key: K, value: T): void {
    const node: Node<T> = { value, prev: this.#tail, next: undefined }
    if (this.#tail) this.#tail.next = node
    else this.#head = node
    this.#tail = node
    this.#nodes.set(key, node)
  }

  /** Adds `entries` before the first, in their order. */
  unshift(entries: Iterable<readonly [K, T]>): void {
    const head = this.#head
    let last: Node<T> | undefined
    this.#head = undefined
    for (const [key, value] of entries) {
      const node: Node<T> = { value, prev: last, next: undefined }
      if (last) last.next = node
      else this.#head = node
      last = node
      this.#nodes.set(key, node)
    }
    if (!last) {
      this.#head = head
      return
    }
    last.next = head
    if (head) head.prev = last
    else this.#tail = last
  }

  /** Takes the entry of `key` out; false if there is none. */
  delete(key: K): boolean {
    const node = this.#nodes.get(key)
    if (!node) return false
    this.#nodes.delete(key)
    if (node.prev) node.prev.next = node.next
    else this.#head = node.next
    if (node.next) node.next.prev = node.prev
    else this.#tail = node.prev
    return true
  }

  /** The entries in their order. */
  *values(): IterableIterator<T> {
    for (let node = this.#head; node; node = node.next) yield node.value
  }

  clear(): void {
    this.#nodes.clear()
    this.#head = this.#tail = undefined
  }
}
