/**
 * Checks of the SDK's numeric options, made when a Producer or Consumer is
 * made: NaN, 0 or a negative delay makes a timer fire at once (a reconnect
 * or timeout loop), one of 2^31 ms or more too, and a count of NaN or 0
 * stops everything. A TypeError names the option instead.
 */

/** Longest delay a timer can wait, in ms; past it, it fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** `value` if it is a delay a timer can wait, in ms above 0. */
export function checkedMs(owner: string, name: string, value: number): number {
  if (!(value > 0 && value <= MAX_TIMER_MS))
    throw new TypeError(`${owner}: ${name} must be a number of ms above 0 and below 2^31, got ${value}`)
  return value
}

/** `value` if it is a whole number from `min` to `max`. */
export function checkedCount(
  owner: string,
  name: string,
  value: number,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!(Number.isSafeInteger(value) && value >= min && value <= max))
    throw new TypeError(`${owner}: ${name} must be a whole number from ${min} to ${max}, got ${value}`)
  return value
}
