import { nowUs } from '../load/message.js'
import type { Histogram } from './histogram.js'

/** How often the timer is due; the generator's threads and the servers measure themselves alike. */
const LOOP_TICK_MS = 5

/**
 * Records into `delay` how late this thread's loop runs a timer due every
 * LOOP_TICK_MS: a frame or an ack arriving meanwhile waited as long. Returns
 * the timer (clearInterval stops it); it keeps no process alive.
 */
export function recordLoopDelay(delay: Histogram): NodeJS.Timeout {
  let dueUs = nowUs() + LOOP_TICK_MS * 1000
  return setInterval(() => {
    const now = nowUs()
    delay.record(now - dueUs)
    dueUs = now + LOOP_TICK_MS * 1000
  }, LOOP_TICK_MS).unref()
}
