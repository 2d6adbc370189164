/**
 * Bench messages carry what the receiver checks: `<seq> <sent µs> <padding>`.
 * seq counts from 1 per (producer, destination), so a consumer sees 1, 2, 3 …
 * from one room; 0 marks a warm-up message that is not counted. The send time
 * is CLOCK_MONOTONIC in µs (process.hrtime), one clock for every thread and
 * process on the machine, so publish → receive latency needs no clock sync.
 */

/** Now on CLOCK_MONOTONIC, in µs: comparable across threads and processes. */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

const PADDING = 'x'.repeat(4096)

export function makeMessage(seq: number, sentUs: number, bytes: number): string {
  const head = `${seq} ${sentUs} `
  return bytes > head.length ? head + PADDING.slice(0, bytes - head.length) : head
}

/** The seq of a bench message, or -1 if it is not one. */
export function seqOf(message: string): number {
  const space = message.indexOf(' ')
  return space > 0 ? Number(message.slice(0, space)) : -1
}

/** When a bench message was sent (µs, CLOCK_MONOTONIC). */
export function sentUsOf(message: string): number {
  const first = message.indexOf(' ')
  const second = message.indexOf(' ', first + 1)
  return Number(message.slice(first + 1, second))
}
