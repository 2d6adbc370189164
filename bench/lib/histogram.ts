/**
 * A latency histogram in microseconds, log-linear like HdrHistogram: exact
 * below 1024 µs, then 128 buckets per power of two (under 1% error), so a
 * million samples cost a few kilobytes and merge across threads by adding.
 *
 *   value:  0 … 1023 │ 1024 … 2047 │ 2048 … 4095 │ …
 *   bucket: one each │ 128 of 8 µs │ 128 of 16 µs │ …
 */
const LINEAR = 1024
const SUB_BITS = 7
const SUB = 1 << SUB_BITS
/** Up to 2^40 µs (12 days): far past any bench. */
const MAX_EXPONENT = 40
const SIZE = LINEAR + (MAX_EXPONENT - 10) * SUB

export class Histogram {
  readonly counts: Float64Array
  count = 0
  max = 0
  sum = 0

  constructor(counts?: Float64Array) {
    this.counts = counts ?? new Float64Array(SIZE)
  }

  record(us: number): void {
    const value = us < 0 ? 0 : Math.floor(us)
    this.counts[indexOf(value)]! += 1
    this.count++
    this.sum += value
    if (value > this.max) this.max = value
  }

  add(other: HistogramData): void {
    const counts = other.counts
    for (let i = 0; i < counts.length; i++) if (counts[i] !== 0) this.counts[i]! += counts[i]!
    this.count += other.count
    this.sum += other.sum
    if (other.max > this.max) this.max = other.max
  }

  /** The value at quantile q (0..1), as the top of its bucket: never below the true value. */
  quantile(q: number): number {
    if (this.count === 0) return 0
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!
      if (seen >= rank) return Math.min(this.max, topOf(i))
    }
    return this.max
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count
  }

  /** A plain object that survives postMessage (the Float64Array is copied, not shared). */
  toData(): HistogramData {
    return { counts: this.counts, count: this.count, max: this.max, sum: this.sum }
  }

  reset(): void {
    this.counts.fill(0)
    this.count = this.max = this.sum = 0
  }
}

export interface HistogramData {
  readonly counts: Float64Array
  readonly count: number
  readonly max: number
  readonly sum: number
}

function indexOf(value: number): number {
  if (value < LINEAR) return value
  const exponent = Math.min(MAX_EXPONENT - 1, Math.floor(Math.log2(value)))
  const sub = Math.floor(value / 2 ** (exponent - SUB_BITS)) - SUB
  return LINEAR + (exponent - 10) * SUB + Math.min(SUB - 1, sub)
}

function topOf(index: number): number {
  if (index < LINEAR) return index
  const exponent = 10 + Math.floor((index - LINEAR) / SUB)
  const sub = (index - LINEAR) % SUB
  return (SUB + sub + 1) * 2 ** (exponent - SUB_BITS) - 1
}
