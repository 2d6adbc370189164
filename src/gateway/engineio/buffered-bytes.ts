/**
 * The bytes uWS buffers towards all websockets of a node, and the node-wide bound on them
 * (consumerMaxBackpressureBytesTotal; README, Limits and bad input). maxBackpressureBytes bounds
 * one socket; a crowd of sockets that do not read, each under it, would hold their sum in native
 * memory (a copy per socket). Each transport reports its buffered amount after every send and
 * drain, so the total is a running sum (O(1) a send, no scan of the sockets):
 *
 *   send / drain ─▶ report(before, now) ─▶ total += now - before
 *                        │
 *                        └─ total > maxTotalBytes, and this socket holds at least
 *                           minCutBytes and the holders' average ─▶ cut (closed as too slow)
 *
 * The average selects the biggest buffers first; minCutBytes spares a reader that
 * holds a batch or two for a moment.
 */
export class BufferedBytes {
  readonly #maxTotalBytes: number
  readonly #minCutBytes: number
  #total = 0
  /** Sockets holding more than nothing. */
  #holders = 0
  /** Sockets cut for the total's sake. */
  cut = 0

  /**
   * @param maxTotalBytes bound of the total; 0: none
   * @param minCutBytes least a socket must hold to be cut for the total's sake
   */
  constructor(maxTotalBytes: number, minCutBytes: number) {
    this.#maxTotalBytes = maxTotalBytes
    this.#minCutBytes = minCutBytes
  }

  /** Bytes buffered towards all sockets now. */
  get total(): number {
    return this.#total
  }

  /**
   * A socket's buffered amount went from `before` to `now` (0 once it is closed): true if,
   * the total past its bound, this socket is among the biggest and must be cut.
   */
  report(before: number, now: number): boolean {
    this.#total += now - before
    this.#holders += Number(now > 0) - Number(before > 0)
    if (this.#maxTotalBytes === 0 || this.#total <= this.#maxTotalBytes || now < this.#minCutBytes)
      return false
    if (now * this.#holders < this.#total) return false // below the average: the bigger ones go first
    this.cut++
    return true
  }
}
