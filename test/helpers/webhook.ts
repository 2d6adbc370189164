import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { ExecutionContext } from 'ava'

/** One request the receiver got. */
export interface WebhookRequest {
  readonly body: string
  /** The JSON body, parsed. */
  readonly json: { id: string; room: string; message: string; publishedAt: number }
  readonly signature: string | undefined
  readonly authorization: string | undefined
  /** The request's path and query. */
  readonly path: string
  /** When it arrived (Date.now()). */
  readonly at: number
}

/**
 * What the receiver does with a request: answer a status, answer it after
 * `afterMs` (a slow receiver), or never answer ('hang': the connection stays
 * open until the test ends).
 */
export type Answer = number | { readonly status: number; readonly afterMs: number } | 'hang'

export interface WebhookReceiver {
  readonly url: string
  readonly requests: WebhookRequest[]
  /** Requests that were answered 2xx. */
  readonly delivered: WebhookRequest[]
  /** Decides each request's answer (default: 200). */
  answer: (request: WebhookRequest) => Answer
  /** Resolves once `count` requests were answered 2xx (rejects after timeoutMs). */
  waitForDelivered(count: number, timeoutMs?: number): Promise<void>
}

/** A webhook receiver on a free loopback port, as an escalation's target; closed at the test's end. */
export async function startWebhookReceiver(t: ExecutionContext): Promise<WebhookReceiver> {
  const hanging = new Set<ServerResponse>()
  const receiver: WebhookReceiver = {
    url: '',
    requests: [],
    delivered: [],
    answer: () => 200,
    async waitForDelivered(count, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs
      while (receiver.delivered.length < count) {
        if (Date.now() > deadline)
          throw new Error(`waited for ${count} deliveries, got ${receiver.delivered.length}`)
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    },
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      const signature = req.headers['x-snapper-signature']
      const request: WebhookRequest = {
        body,
        json: JSON.parse(body) as WebhookRequest['json'],
        signature: typeof signature === 'string' ? signature : undefined,
        authorization: req.headers.authorization,
        path: req.url ?? '',
        at: Date.now(),
      }
      receiver.requests.push(request)
      const answer = receiver.answer(request)
      if (answer === 'hang') {
        hanging.add(res)
        return
      }
      const { status, afterMs } = typeof answer === 'number' ? { status: answer, afterMs: 0 } : answer
      const reply = (): void => {
        if (status >= 200 && status < 300) receiver.delivered.push(request)
        res.writeHead(status).end()
      }
      if (afterMs === 0) return reply()
      hanging.add(res)
      setTimeout(() => {
        hanging.delete(res)
        if (!res.destroyed) reply()
      }, afterMs)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  ;(receiver as { url: string }).url = `http://127.0.0.1:${port}/escalations`
  t.teardown(async () => {
    for (const res of hanging) res.destroy()
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  return receiver
}

/**
 * Checks an X-Snapper-Signature as the README tells receivers to:
 * `t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, within 5 minutes.
 */
export function isSignedBy(secret: string, request: WebhookRequest): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(request.signature ?? '')
  if (!match) return false
  const [, t, v1] = match
  const expected = createHmac('sha256', secret).update(`${t}.${request.body}`).digest()
  const isFresh = Math.abs(Date.now() / 1000 - Number(t)) < 300
  return isFresh && timingSafeEqual(expected, Buffer.from(v1!, 'hex'))
}
