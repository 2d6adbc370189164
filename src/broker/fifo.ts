/** The items of every empty queue until its first push (never written): most queues of a node stay empty. */
const NO_ITEMS: never[] = Object.freeze([]) as unknown as never[]

/** A queue with O(1) push and take from the front, compacted now and then; it sums its items' sizes. */
export class Fifo<T> {
  #items: T[] = NO_ITEMS
  #head = 0
  /** The sum of sizeOf over the items. */
  size = 0

  constructor(readonly sizeOf: (item: T) => number) {}

  get length(): number {
    return this.#items.length - this.#head
  }

  push(item: T): void {
    if (this.#items === NO_ITEMS) this.#items = []
    this.#items.push(item)
    this.size += this.sizeOf(item)
  }

  /** The item `index` places from the front. */
  at(index: number): T | undefined {
    return this.#items[this.#head + index]
  }

  take(max: number): T[] {
    const end = Math.min(this.#items.length, this.#head + max)
    const taken = this.#items.slice(this.#head, end)
    for (const item of taken) this.size -= this.sizeOf(item)
    this.#head = end
    if (this.#head === this.#items.length) {
      this.#items = NO_ITEMS
      this.#head = 0
    } else if (this.#head > 1024) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return taken
  }

  removeWhere(predicate: (item: T) => boolean): void {
    this.#items = this.#items.slice(this.#head).filter(item => !predicate(item))
    this.#head = 0
    this.size = 0
    for (const item of this.#items) this.size += this.sizeOf(item)
  }
}
