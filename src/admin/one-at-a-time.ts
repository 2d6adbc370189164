/**
 * Work that strangers can ask for, run one at a time: callers that come while
 * it runs share its outcome instead of starting it again, so a flood of
 * requests costs one run in flight, not one each (README, "The admin app").
 */
export function oneAtATime<T>(work: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined
  return () => (running ??= work().finally(() => (running = undefined)))
}
