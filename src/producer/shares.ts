/**
 * The frames in flight of all producer connections of a node, shared fairly
 * (docs/producer-protocol.md §7). Every connection's work is queued in Redis
 * ahead of the next request, whoever sends it; so what waits there is
 * bounded for the node, not only per connection (a producer may open many):
 *
 *   total < maxBytes ──────────────▶ every connection reads (within its own bound)
 *   total ≥ maxBytes, own < share ─▶ reads: a light producer is never held back
 *   total ≥ maxBytes, own ≥ share ─▶ waits its turn (FIFO); share = maxBytes ÷ connections with work in flight
 *
 * A waiting connection stays waiting once its own work is done, until its
 * turn: one connection is woken each time some work finishes below the
 * bound, all of them once nothing is in flight. Woken each time its work was
 * done, the many connections of one flooder would each keep a frame in
 * flight, and their sum would stay ahead of everyone else's.
 */
export class ProducerShares {
  readonly maxBytes: number
  #bytes = 0
  /** Connections with work in flight. */
  #active = 0
  /** Connections over their share, in the order they must wait; woken by `resume`. */
  readonly #waiting = new Set<Share>()

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  /** Weight (workBytesOf) of the frames in flight, closed connections' included, until their work is done. */
  get bytes(): number {
    return this.#bytes
  }

  /** Connections waiting for their turn. */
  get waiting(): number {
    return this.#waiting.size
  }

  /** One connection's part; `resume` is called when its turn comes. */
  open(resume: () => void): Share {
    return new Share(this, resume)
  }

  /** @internal Share's bookkeeping. */
  hold(bytes: number, before: number): void {
    this.#bytes += bytes
    if (before === 0 && bytes > 0) this.#active++
  }

  /** @internal */
  release(bytes: number, after: number): void {
    this.#bytes -= bytes
    if (after === 0 && bytes > 0) this.#active--
    if (this.#waiting.size === 0 || this.#bytes >= this.maxBytes) return
    if (this.#bytes === 0) for (const next of [...this.#waiting]) this.#wake(next)
    else this.#wake(this.#waiting.values().next().value!)
  }

  /** @internal */
  mayRead(share: Share): boolean {
    if (this.#waiting.has(share)) return false
    if (this.#bytes < this.maxBytes || share.bytes < this.maxBytes / Math.max(1, this.#active)) return true
    this.#waiting.add(share)
    return false
  }

  /** @internal A closed connection never reads again; its work in flight stays counted until done. */
  forget(share: Share): void {
    this.#waiting.delete(share)
  }

  #wake(share: Share): void {
    this.#waiting.delete(share)
    share.resume()
  }
}

/** One producer connection's frames in flight, counted in the node's ProducerShares. */
export class Share {
  readonly #shares: ProducerShares
  readonly resume: () => void
  #bytes = 0

  constructor(shares: ProducerShares, resume: () => void) {
    this.#shares = shares
    this.resume = resume
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Whether this connection may read its next frame now; if not, it waits for its turn (`resume`). */
  get mayRead(): boolean {
    return this.#shares.mayRead(this)
  }

  hold(bytes: number): void {
    this.#shares.hold(bytes, this.#bytes)
    this.#bytes += bytes
  }

  release(bytes: number): void {
    this.#bytes -= bytes
    this.#shares.release(bytes, this.#bytes)
  }

  close(): void {
    this.#shares.forget(this)
  }
}
