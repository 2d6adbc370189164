import { createHmac } from 'node:crypto'

/** The escalation webhook's body: a tracked message that nobody acknowledged in time. */
export interface EscalationPayload {
  readonly id: string
  readonly room: string
  readonly message: string
  /** When the message was stored, ms since the epoch. */
  readonly publishedAt: number
}

export interface WebhookTarget {
  /** Without user and password: those go as the Authorization header. */
  readonly url: string
  /** `Basic …` from the configured URL's user and password, if it had them. */
  readonly authorization: string | undefined
  /** Signs every request (X-Snapper-Signature). */
  readonly secret: string
  /** Longest a request may take, in ms; then it counts as failed. */
  readonly timeoutMs: number
}

/** What one attempt gave: delivered (a 2xx answer), or why not. */
export type WebhookResult = { readonly ok: true } | { readonly ok: false; readonly reason: string }

export const SIGNATURE_HEADER = 'x-snapper-signature'

/**
 * The configured URL split for fetch, which refuses a URL with credentials
 * (and would name it, password and all, in its error): the URL without them,
 * and their Basic Authorization header, as curl would send it.
 */
export function webhookAddress(configured: string): Pick<WebhookTarget, 'url' | 'authorization'> {
  const url = new URL(configured)
  if (url.username === '' && url.password === '') return { url: configured, authorization: undefined }
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
  url.username = ''
  url.password = ''
  return { url: url.href, authorization: `Basic ${Buffer.from(credentials).toString('base64')}` }
}

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. The receiver
 * recomputes it over the raw body with the same secret, compares in constant
 * time, and refuses a `t` too far from its clock (a replayed request).
 */
export function signBody(secret: string, body: string, unixSec: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSec}.${body}`).digest('hex')
  return `t=${unixSec},v1=${mac}`
}

/** POSTs one escalation as JSON; never throws (a failure is a result, retried by the caller). */
export async function postEscalation(
  target: WebhookTarget,
  payload: EscalationPayload,
): Promise<WebhookResult> {
  const body = JSON.stringify(payload)
  try {
    const res = await fetch(target.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signBody(target.secret, body, Math.floor(Date.now() / 1000)),
        ...(target.authorization !== undefined && { authorization: target.authorization }),
      },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(target.timeoutMs),
    })
    // The answer's body is not read: drop it, so the connection can be reused.
    await res.body?.cancel().catch(() => {}) // a body cut short changes nothing: the status is in
    return res.status >= 200 && res.status < 300 ? { ok: true } : { ok: false, reason: `HTTP ${res.status}` }
  } catch (err) {
    const { name, message } = err as Error
    return {
      ok: false,
      reason: name === 'TimeoutError' ? `no answer within ${target.timeoutMs} ms` : message,
    }
  }
}
