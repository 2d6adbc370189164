import { once, type EventEmitter } from 'node:events'

/**
 * Waiting in tests, by what is waited for. Wait for an event where there is
 * one (`eventWithin`, once() with a bound; a client's `waitFor`);
 * `eventually` for state that changes with no event to wait on; `holdsFor`
 * for "nothing more happens" (no duplicate, no second close); `within` for
 * one step that could wait for ever; `pause` only where time itself is
 * under test (traffic spaced out, a heartbeat kept or missed).
 */

/** What `eventually` takes for "not yet". */
type NotYet = false | undefined | null

export interface WaitOptions {
  /** Named in the error if time runs out (a function is called then: to show output so far). */
  readonly what?: string | (() => string)
  /** @default 10000 */
  readonly timeoutMs?: number
  /** How often `check` is called, in ms. @default 10 */
  readonly everyMs?: number
}

/**
 * Calls `check` until it returns something other than false, undefined or
 * null, and resolves with that value. A throw fails at once (wrap the check
 * if an error means "not yet"). Rejects after `timeoutMs`, naming `what`;
 * a check still running then may answer up to `timeoutMs` (at least 5 s)
 * later: a slow check still counts, one that never answers fails the wait.
 */
export async function eventually<T>(
  check: () => T | NotYet | Promise<T | NotYet>,
  { what = 'a condition', timeoutMs = 10_000, everyMs = 10 }: WaitOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const answer = check()
    const value =
      answer instanceof Promise
        ? await within(
            answer,
            deadline + Math.max(timeoutMs, 5000) - Date.now(),
            () => `${nameOf(what)} (a check did not answer)`,
          )
        : answer
    if (value !== false && value !== undefined && value !== null) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${nameOf(what)}`)
    await pause(everyMs)
  }
}

/**
 * Resolves after `ms` if `check` held all that time (looked at every 10 ms),
 * rejects as soon as it does not: nothing more arrived, nothing twice.
 */
export async function holdsFor(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  do {
    if (!check()) throw new Error(`no longer true within ${ms} ms: ${what}`)
    await pause(Math.min(10, Math.max(0, deadline - Date.now())))
  } while (Date.now() < deadline)
  if (!check()) throw new Error(`no longer true within ${ms} ms: ${what}`)
}

/** Lets `ms` pass, for tests where time itself is under test; never to wait for something to happen. */
export function pause(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}

/**
 * Resolves or rejects as `work` does, or rejects after `timeoutMs` naming
 * `what`: for one awaited step that has no timeout of its own.
 */
export async function within<T>(
  work: Promise<T>,
  timeoutMs: number,
  what: string | (() => string),
): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${nameOf(what)}`)),
      timeoutMs,
    )
  })
  try {
    return await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * once() with a bound: the event's arguments, a rejection if the emitter
 * emits 'error' first (as once() does), or after `timeoutMs` one naming the
 * event, instead of a test that hangs until ava's timeout names nothing.
 */
export function eventWithin(
  emitter: EventEmitter | { once(event: string, listener: (...args: never[]) => void): unknown },
  event: string,
  timeoutMs = 30_000,
): Promise<unknown[]> {
  return within(once(emitter as EventEmitter, event), timeoutMs, `the event '${event}'`)
}

const nameOf = (what: string | (() => string)): string => (typeof what === 'string' ? what : what())
