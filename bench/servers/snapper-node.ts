/**
 * One Snapper node for the bench, in its own process: the real `startNode`
 * (gateway on uWebSockets.js, producer listener, BrokerNode) with the default
 * config, except what a bench must set: its Redis, a known token secret, no
 * admin app, free ports on 127.0.0.1, room for 100,000 sessions.
 */
import { defaults, type Config } from '../../src/config/defaults.js'
import { OPTIONS } from '../../src/config/env.js'
import { startNode } from '../../src/cli/node.js'
import { createLogger } from '../../src/log.js'
import { serveChild, serverOptions } from './child.js'

const options = serverOptions()
const overrides = JSON.parse(process.env.BENCH_SNAPPER_CONFIG ?? '{}') as Partial<Config>
const config: Config = Object.freeze({
  ...defaults,
  host: '127.0.0.1',
  redis: OPTIONS.redis.parse(options.redisUrl), // one URL, or a cluster's nodes comma-separated
  redisPrefix: options.prefix,
  tokenSecrets: [options.secret],
  adminPort: 0,
  workers: 0,
  logLevel: 'warn',
  drainSpreadMs: 0,
  maxSessions: 200_000,
  ...overrides,
})
const logger = createLogger(config.logLevel, { bench: 'snapper', index: options.index })
const running = await startNode(config, logger, { gateway: 0, producer: 0 })
serveChild({ gatewayPort: running.ports.gateway, producerPort: running.ports.producer }, () => running.stop())
