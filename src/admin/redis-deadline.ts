/**
 * A bound on how long an admin request waits for Redis. One that hangs with
 * its connections open (stopped, swapping, a long script) fails no command:
 * until the watchdog's PING finds it (redisPingIntervalMs), a request would
 * wait as long as Redis does. Past redisRequestTimeoutMs it is answered 503
 * STORE_UNAVAILABLE instead. Its work is not undone: the commands are sent,
 * so a write (POST) may still be done once Redis answers, and its reason says
 * so (README, "HTTP producer API").
 */
import type { Middleware } from 'koa'
import { SnapperError } from '../errors.js'

export function redisDeadline(timeoutMs: number): Middleware {
  return async (ctx, next) => {
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const reason = `Redis did not answer within ${timeoutMs} ms (redisRequestTimeoutMs)`
        const mayBeDone = ctx.method === 'POST' ? ': this may still be done once it does' : ''
        reject(new SnapperError('STORE_UNAVAILABLE', undefined, { reason: reason + mayBeDone }))
      }, timeoutMs)
    })
    try {
      // The route's own outcome, if it comes later, is dropped: Promise.race has handled it.
      await Promise.race([next(), late])
    } finally {
      clearTimeout(timer)
    }
  }
}
