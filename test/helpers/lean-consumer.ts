import { LeanConsumer, type ConsumerHost, type ConsumerSpec } from '../../bench/load/consumer.js'
import { Histogram } from '../../bench/lib/histogram.js'

/**
 * A bench lean consumer run the way a bench thread runs it, recording what
 * it delivers: to a Snapper gateway with a token (and the SDK's codec), or
 * to any bench target with the spec the target gives (RunningTarget.consumerSpec).
 */
export function leanConsumer(
  port: number,
  token: string,
  eio: 3 | 4,
  options: { codec?: 'json' | 'msgpack'; deflate?: boolean } = {},
) {
  return leanConsumerOf({
    host: '127.0.0.1',
    port,
    path: `/websocket/?EIO=${eio}&transport=websocket&token=${token}${options.codec ? `&codec=${options.codec}` : ''}`,
    protocol: 'snapper',
    eio,
    ...options,
  })
}

export function leanConsumerOf(spec: ConsumerSpec) {
  let opened: () => void
  let failed: (reason: Error) => void
  const isOpen = new Promise<void>((resolve, reject) => {
    opened = resolve
    failed = reject
  })
  const closes: string[] = []
  const host: ConsumerHost = {
    latency: new Histogram(),
    opened: () => opened(),
    closed: (_consumer, reason) => {
      closes.push(reason)
      failed(new Error(reason))
    },
  }
  const consumer = new LeanConsumer(spec, host)
  consumer.recorded = []
  consumer.connect()
  const heartbeat = setInterval(() => consumer.heartbeat(Date.now()), 50)
  return {
    consumer,
    isOpen,
    closes,
    close() {
      clearInterval(heartbeat)
      consumer.close()
    },
  }
}
