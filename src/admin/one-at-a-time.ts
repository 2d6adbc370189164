/**
 * Work run one at a time: callers that come while it runs share its outcome
 * instead of starting it again. So a flood of requests from strangers costs
 * one run in flight, not one each (README, "The admin app"), and a periodic
 * task never overlaps itself.
 */
export function oneAtATime<T>(work: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined
  return () => (running ??= work().finally(() => (running = undefined)))
}
