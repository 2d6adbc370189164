/**
 * The node of bench/micro/stalled-consumers.ts, in a process of its own so that the bench
 * measures the node and not its clients. Forked by that bench with the Redis URL and the
 * optional consumerMaxBackpressureBytesTotal; tells its ports, then answers each `sample`
 * with what it holds and counts, until `stop`. Run it under `--cpu-prof` for a profile of
 * the node alone (written when it exits).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { startNode } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { scrape } from '../../src/metrics/index.js'
import { testConfig } from '../../test/helpers/broker.js'

/** What the bench reads of the node each second. */
export interface NodeSample {
  readonly rssBytes: number
  readonly sessions: number
  readonly bufferedBytes: number
  /** Longest the event loop was late since the last sample, in ms. */
  readonly loopDelayMaxMs: number
  /** The counters and gauges of /metrics that say where the work and the closes went. */
  readonly metrics: Record<string, number>
}

export type NodeRequest = { readonly type: 'sample' } | { readonly type: 'stop' }
export type NodeReply =
  | { readonly type: 'ready'; readonly ports: { readonly gateway: number; readonly producer: number } }
  | { readonly type: 'sample'; readonly sample: NodeSample }
  | { readonly type: 'stopped' }

const WATCHED =
  /^(snapper_(log_reads|batches_sent|ack_timeouts|consumer_too_slow|consumer_input_limited|announcements|messages_published)_total|snapper_consumer_sessions)(\{[^}]*\})? (\d+(\.\d+)?)$/gm

const [url = '', total = ''] = process.argv.slice(2)
const tell = (reply: NodeReply): void => void process.send?.(reply)
const node = await startNode(
  testConfig(url, total === '' ? {} : { consumerMaxBackpressureBytesTotal: Number(total) }),
  silentLogger,
  { gateway: 0, producer: 0 },
)
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()

async function sample(): Promise<NodeSample> {
  const { body } = await scrape(node.registry)
  const metrics: Record<string, number> = {}
  for (const [, name, , labels = '', value] of body.matchAll(WATCHED))
    metrics[`${name}${labels}`] = Number(value)
  const loopDelayMaxMs = loopDelay.max / 1e6
  loopDelay.reset()
  const engine = node.gateway.engine as { bufferedBytes?: number }
  return {
    rssBytes: process.memoryUsage.rss(),
    sessions: node.gateway.engine.sessions.size,
    bufferedBytes: engine.bufferedBytes ?? 0,
    loopDelayMaxMs,
    metrics,
  }
}

process.on('message', (request: NodeRequest) => {
  if (request.type === 'sample')
    sample().then(
      value => tell({ type: 'sample', sample: value }),
      (err: unknown) => console.error('sample failed', err),
    )
  else
    node.stop().then(
      // Exits here: a CPU profile (--cpu-prof) is written on exit.
      () => void process.send?.({ type: 'stopped' } satisfies NodeReply, () => process.exit(0)),
      (err: unknown) => {
        console.error('stop failed', err)
        process.exit(1)
      },
    )
})
tell({ type: 'ready', ports: node.ports })
