import type { Logger } from './log.js'

/**
 * The last line against our own bugs. Some functions are called by the event
 * loop itself: uWebSockets.js handlers, socket listeners, timers. A throw out
 * of one of them reaches `uncaughtException`, and uWS even aborts the
 * process when a request handler throws before answering. So each of them
 * goes through guard(): a throw is logged once, with its stack and `site`;
 * `recover` reports it where it can (a 500, an error reply, a closed
 * socket); and the process keeps serving everyone else.
 */
export function guard<A extends unknown[]>(
  log: Logger,
  site: string,
  fn: (...args: A) => void,
  recover?: (...args: A) => void,
): (...args: A) => void {
  return (...args: A): void => {
    try {
      fn(...args)
    } catch (err) {
      recoverFrom(log, site, err, recover, args)
    }
  }
}

/**
 * guard(`fn`, `recover`)(self), called at once: for an object that is called by a timer
 * through a method of its own, rather than holding a guarded closure (each object kept idle
 * would hold it for its whole life: docs/performance.md, section 1).
 */
export function callGuarded<S>(
  log: Logger,
  site: string,
  self: S,
  fn: (self: S) => void,
  recover: (self: S) => void,
): void {
  try {
    fn(self)
  } catch (err) {
    recoverFrom(log, site, err, recover, [self])
  }
}

function recoverFrom<A extends unknown[]>(
  log: Logger,
  site: string,
  err: unknown,
  recover: ((...args: A) => void) | undefined,
  args: A,
): void {
  log.error({ err, site }, 'handler failed unexpectedly')
  if (recover === undefined) return
  try {
    recover(...args)
  } catch (again) {
    log.error({ err: again, site }, 'handler failed unexpectedly, and so did its recovery')
  }
}
