/**
 * The frames in flight of all producer connections of a node, shared fairly
 * between producers (docs/producer-protocol.md §7). Every connection's work
 * is queued in Redis ahead of the next request, whoever sends it; so what
 * waits there is bounded for the node, not only per connection, and shared
 * per producer (the `id` of its token), not per connection: a producer may
 * open many.
 *
 *   total < maxBytes ──────────────────▶ every connection reads (within its own bound)
 *   total ≥ maxBytes, producer < share ─▶ reads: a light producer is never held back
 *   total ≥ maxBytes, producer ≥ share ─▶ waits its turn; share = maxBytes ÷ producers with work in flight
 *
 * Turns go round the producers with connections waiting, in the order they
 * first waited, and within one producer to its connections in the order they
 * stopped: one connection is woken each time some work finishes below the
 * bound, all of them once nothing is in flight. A waiting connection is also
 * woken when its producer's work falls below its share. It is not woken as
 * soon as its own work is done: the many connections of one flooder would
 * each keep a frame in flight, and their sum would stay ahead of everyone else's.
 */
export class ProducerShares {
  readonly maxBytes: number
  #bytes = 0
  /** Producers with work in flight. */
  #active = 0
  /** Producers by token id, while they have a connection open or work in flight. */
  readonly #producers = new Map<string, ProducerGroup>()
  /** Producers with connections waiting, in the order their turns come. */
  readonly #turns = new Set<ProducerGroup>()
  #waiting = 0

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes
  }

  /** Weight (workBytesOf) of the frames in flight, closed connections' included, until their work is done. */
  get bytes(): number {
    return this.#bytes
  }

  /** Connections waiting for their turn. */
  get waiting(): number {
    return this.#waiting
  }

  /** Producers counted now: with a connection open that has authenticated, or work in flight. */
  get producers(): number {
    return this.#producers.size
  }

  /**
   * One connection's part, counted as a producer of its own until `identify`;
   * `resume` is called when its turn comes.
   */
  open(resume: () => void): Share {
    return new Share(this, new ProducerGroup(undefined), resume)
  }

  /** @internal The producer of token id `id`, shared by all its connections. */
  producerOf(id: string): ProducerGroup {
    let producer = this.#producers.get(id)
    if (producer === undefined) this.#producers.set(id, (producer = new ProducerGroup(id)))
    producer.connections++
    return producer
  }

  /** @internal Share's bookkeeping. */
  hold(producer: ProducerGroup, bytes: number): void {
    this.#bytes += bytes
    if (producer.bytes === 0 && bytes > 0) this.#active++
    producer.bytes += bytes
  }

  /** @internal */
  release(producer: ProducerGroup, bytes: number): void {
    this.#bytes -= bytes
    producer.bytes -= bytes
    if (producer.bytes === 0 && bytes > 0) {
      this.#active--
      this.#forgetIfIdle(producer)
    }
    if (this.#waiting === 0) return
    if (this.#bytes === 0) for (const next of [...this.#turns]) this.#wakeAll(next)
    else if (this.#bytes < this.maxBytes) this.#wakeNext(this.#turns.values().next().value!)
    else if (producer.waiting.size > 0 && producer.bytes < this.#share) this.#wakeNext(producer)
  }

  /** @internal */
  mayRead(share: Share): boolean {
    const { producer } = share
    if (producer.waiting.has(share)) return false
    if (this.#bytes < this.maxBytes || producer.bytes < this.#share) return true
    producer.waiting.add(share)
    this.#waiting++
    this.#turns.add(producer)
    return false
  }

  /** @internal A connection stops waiting (closed, or moved to its producer). */
  unwait(share: Share): void {
    const { producer } = share
    if (!producer.waiting.delete(share)) return
    this.#waiting--
    if (producer.waiting.size === 0) this.#turns.delete(producer)
  }

  /** @internal A connection closed: its producer's work in flight stays counted until done. */
  leave(producer: ProducerGroup): void {
    producer.connections--
    this.#forgetIfIdle(producer)
  }

  get #share(): number {
    return this.maxBytes / Math.max(1, this.#active)
  }

  #forgetIfIdle(producer: ProducerGroup): void {
    if (producer.id !== undefined && producer.connections === 0 && producer.bytes === 0)
      this.#producers.delete(producer.id)
  }

  /** The producer's next connection reads; the producer's next turn comes after the others'. */
  #wakeNext(producer: ProducerGroup): void {
    const share: Share = producer.waiting.values().next().value!
    this.unwait(share)
    if (producer.waiting.size > 0) {
      this.#turns.delete(producer)
      this.#turns.add(producer)
    }
    share.resume()
  }

  #wakeAll(producer: ProducerGroup): void {
    for (const share of [...producer.waiting]) {
      this.unwait(share)
      share.resume()
    }
  }
}

/** One producer's work in flight, all its connections together. */
export class ProducerGroup {
  /** Its token's id; undefined for a connection counted as a producer of its own. */
  readonly id: string | undefined
  bytes = 0
  /** Its connections open (identified ones only). */
  connections = 0
  /** Its connections waiting for their turn, in the order they stopped. */
  readonly waiting = new Set<Share>()

  constructor(id: string | undefined) {
    this.id = id
  }
}

/** One producer connection's frames in flight, counted in its producer's and the node's. */
export class Share {
  readonly #shares: ProducerShares
  readonly resume: () => void
  #producer: ProducerGroup
  #bytes = 0
  #isClosed = false

  constructor(shares: ProducerShares, producer: ProducerGroup, resume: () => void) {
    this.#shares = shares
    this.#producer = producer
    this.resume = resume
  }

  /** This connection's frames in flight (its producerMaxPendingBytes). */
  get bytes(): number {
    return this.#bytes
  }

  /** @internal */
  get producer(): ProducerGroup {
    return this.#producer
  }

  /** Whether this connection may read its next frame now; if not, it waits for its turn (`resume`). */
  get mayRead(): boolean {
    return this.#shares.mayRead(this)
  }

  /**
   * The connection authenticated as producer `id` (its token's `id` claim):
   * from now on it shares that producer's share. Called before any work.
   */
  identify(id: string): void {
    if (this.#bytes !== 0) throw new Error('a connection is identified before any work')
    this.#shares.unwait(this)
    if (this.#producer.id !== undefined) this.#shares.leave(this.#producer)
    this.#producer = this.#shares.producerOf(id)
  }

  hold(bytes: number): void {
    this.#bytes += bytes
    this.#shares.hold(this.#producer, bytes)
  }

  release(bytes: number): void {
    this.#bytes -= bytes
    this.#shares.release(this.#producer, bytes)
  }

  close(): void {
    if (this.#isClosed) return
    this.#isClosed = true
    this.#shares.unwait(this)
    if (this.#producer.id !== undefined) this.#shares.leave(this.#producer)
  }
}
