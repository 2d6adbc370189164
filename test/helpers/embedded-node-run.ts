/**
 * Runs one node in this process, as a program that embeds Snapper does
 * (startNode, no CLI), for test/e2e/drain-timeout.test.ts. It never calls
 * process.exit: once stopped, it must end by itself. Prints one JSON line
 * per event on stdout (EmbeddedNodeEvent); its log goes to stderr.
 *
 *   node embedded-node-run.js <redis target as JSON> <config overrides as JSON>
 *
 * SIGUSR2 stops the node (RunningNode.stop()). The BrokerNode's own stop, as
 * the drain calls it, is watched apart: it may still wait after the drain
 * gave up. Until the process ends, what keeps it alive is printed every
 * 500 ms after the stop.
 */
import { pino } from 'pino'
import { startNode } from '../../src/cli/node.js'
import type { Config, RedisTarget } from '../../src/config/defaults.js'
import { testConfig } from './broker.js'

export type EmbeddedNodeEvent =
  | { readonly event: 'started'; readonly gateway: number; readonly producer: number }
  /** `atMs`: since the stop was asked. */
  | {
      readonly event: 'stop' | 'brokerNodeStop' | 'producerClose'
      readonly outcome: 'resolved' | 'rejected'
      readonly message?: string
      readonly atMs: number
    }
  | { readonly event: 'alive'; readonly resources: string[] }

const say = (event: EmbeddedNodeEvent): void => void process.stdout.write(`${JSON.stringify(event)}\n`)

const [target, overrides = '{}'] = process.argv.slice(2)
if (target === undefined)
  throw new Error('usage: embedded-node-run.js <redis target as JSON> [config overrides as JSON]')
const config = testConfig(JSON.parse(target) as RedisTarget, JSON.parse(overrides) as Partial<Config>)
const logger = pino({ level: 'warn' }, pino.destination(2))
const running = await startNode(config, logger, { gateway: 0, producer: 0 })
say({ event: 'started', gateway: running.ports.gateway, producer: running.ports.producer })

process.once('SIGUSR2', () => {
  const askedAt = Date.now()
  const watch = (event: 'stop' | 'brokerNodeStop' | 'producerClose', work: Promise<void>): Promise<void> => {
    work.then(
      () => say({ event, outcome: 'resolved', atMs: Date.now() - askedAt }),
      (err: unknown) =>
        say({ event, outcome: 'rejected', message: (err as Error).message, atMs: Date.now() - askedAt }),
    )
    return work
  }
  // The drain calls these on the same objects: what they return is what it waits for.
  const { node, producer } = running
  const brokerNodeStop = node.stop.bind(node)
  node.stop = spreadMs => watch('brokerNodeStop', brokerNodeStop(spreadMs))
  const producerClose = producer.close.bind(producer)
  producer.close = () => watch('producerClose', producerClose())
  watch('stop', running.stop()).catch(() => {}) // told on stdout
  // Unref'd: it reports what holds the process, and holds nothing itself.
  setInterval(() => say({ event: 'alive', resources: process.getActiveResourcesInfo() }), 500).unref()
})
