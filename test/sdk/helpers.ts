import type { ExecutionContext } from 'ava'
import { Consumer, type ConsumerOptions, type MessageMeta } from '../../src/sdk/consumer/node.js'

/** An SDK consumer of the gateway on `port` (not connected yet); closed at the test's end. */
export function consumerFor(
  t: ExecutionContext,
  port: number,
  token: string,
  options: Omit<ConsumerOptions, 'token'> = {},
): Consumer {
  const consumer = new Consumer(`http://127.0.0.1:${port}`, { token, reconnectMinMs: 100, ...options })
  t.teardown(() => consumer.close())
  return consumer
}

export interface Received {
  readonly all: (readonly [message: string, meta: MessageMeta])[]
  /** The messages alone, in arrival order. */
  messages(): string[]
  /** Resolves once `count` messages arrived (rejects after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<void>
}

/** Records every message a consumer hands out, with its meta. */
export function collect(consumer: Consumer): Received {
  const all: (readonly [string, MessageMeta])[] = []
  let wake = (): void => {}
  consumer.on('message', (message, meta) => {
    all.push([message, meta])
    wake()
  })
  return {
    all,
    messages: () => all.map(([message]) => message),
    waitFor(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`waited for ${count} messages, got ${all.length}`)),
          timeoutMs,
        )
        const check = (): void => {
          if (all.length < count) return
          clearTimeout(timer)
          resolve()
        }
        const previous = wake
        wake = () => {
          previous()
          check()
        }
        check()
      })
    },
  }
}
