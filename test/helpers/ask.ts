/** An HTTP request as a client that gives up sees it: what the stall tests assert on. */

export interface Answer {
  readonly status: number
  readonly retryAfter: string | null
  readonly body: string
  readonly tookMs: number
}

/** A request that a client gives up on after `giveUpMs` (then: status 0, and why in the body). */
export async function ask(url: string, init: RequestInit = {}, giveUpMs = 10_000): Promise<Answer> {
  const started = Date.now()
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(giveUpMs) })
    const body = await res.text()
    return {
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      body,
      tookMs: Date.now() - started,
    }
  } catch (err) {
    const cause = (err as Error & { cause?: unknown }).cause
    const why = `no answer: ${String(err)}${cause === undefined ? '' : ` (${String(cause)})`}`
    return { status: 0, retryAfter: null, body: why, tookMs: Date.now() - started }
  }
}

/**
 * For a node that refuses "at once" (its watchdog saw Redis down), told from one that refuses after
 * redisRequestTimeoutMs, with room for a loaded CI machine: the request timeout is 10 s with
 * AT_ONCE, and a refusal at once comes within AT_ONCE_MS (well under 1 s unloaded).
 */
export const AT_ONCE = { redisRequestTimeoutMs: 10_000 } as const
export const AT_ONCE_MS = 5000
