/**
 * The bytes of published messages handed to Redis and not stored yet: in
 * flight, or held in ioredis' offline queue while Redis is down. Bounded:
 *
 *   bytes ≥ maxBytes ──▶ full: producer connections are not read (they wait),
 *                              an HTTP publish gets STORE_UNAVAILABLE
 *   bytes ≤ maxBytes / 2 ─▶ room again: the waiting connections read on
 *
 * A publish that enters while there is room always enters whole, so the bound
 * is passed by one publish at most per producer.
 */
export class PublishBacklog {
  readonly maxBytes: number
  #bytes = 0
  #isFull = false
  readonly #onRoom: (() => void)[] = []

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  /** UTF-8 bytes of the rooms and messages handed over and not stored yet. */
  get bytes(): number {
    return this.#bytes
  }

  /** Whether producers must wait until the backlog is half gone. */
  get isFull(): boolean {
    return this.#isFull
  }

  /** Calls `listener` each time a full backlog has room again. */
  onRoom(listener: () => void): void {
    this.#onRoom.push(listener)
  }

  /** Counts `bytes` until `stored` settles (stored, or failed). */
  hold(bytes: number, stored: Promise<unknown>): void {
    this.#bytes += bytes
    if (this.#bytes >= this.maxBytes) this.#isFull = true
    const release = (): void => {
      this.#bytes -= bytes
      if (!this.#isFull || this.#bytes > this.maxBytes / 2) return
      this.#isFull = false
      for (const listener of this.#onRoom) listener()
    }
    stored.then(release, release)
  }
}
