/**
 * The chaos run's one clock (ms since the run began), so that the fault
 * timeline, the publishes and the receipts compare; and the seed's draws.
 */
const began = performance.now()

export const now = (): number => performance.now() - began
export const at = (ms: number): string => `${(ms / 1000).toFixed(2)}s`
export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Waits for `promise` at most `ms`; it goes on regardless. */
export const upTo = (promise: Promise<unknown>, ms: number): Promise<unknown> =>
  Promise.race([promise.catch(() => {}), sleep(ms)])

export const pick = <T>(items: readonly T[], draw: () => number): T =>
  items[Math.floor(draw() * items.length)]!
export const between = (min: number, max: number, draw: () => number): number =>
  Math.floor(min + draw() * (max - min))
