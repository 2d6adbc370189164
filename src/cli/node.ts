import { hostname } from 'node:os'
import { Tokens } from '../auth/token.js'
import { createBrokerCore, type BrokerCore } from '../broker/core.js'
import { BrokerNode } from '../broker/node.js'
import type { Config } from '../config/defaults.js'
import { createGateway, type Gateway } from '../gateway/app.js'
import type { Logger } from '../log.js'
import { createProducerListener, type ProducerListener } from '../producer/listener.js'
import { createRedisClients } from '../redis/connect.js'

/** How long start-up waits for Redis before it gives up with a clear message, in ms. */
const REDIS_START_TIMEOUT_MS = 5000

export interface RunningNode {
  readonly core: BrokerCore
  readonly node: BrokerNode
  readonly gateway: Gateway
  readonly producer: ProducerListener
  readonly tokens: Tokens
  /** The ports actually bound (tests pass 0). */
  readonly ports: { readonly gateway: number; readonly producer: number }
  /**
   * Graceful drain: stop accepting, store every producer message already
   * received, close consumers (spread out) with their cursors persisted, then
   * close Redis. Resolves when done.
   */
  stop(): Promise<void>
}

/**
 * Starts one broker node in this process: Redis (fails fast if unreachable),
 * the node, its consumer gateway and the producer listener.
 */
export async function startNode(
  config: Config,
  logger: Logger,
  ports: { gateway: number; producer: number } = { gateway: config.gatewayPort, producer: config.producerPort },
): Promise<RunningNode> {
  const redis = createRedisClients(config.redis, logger)
  try {
    await redis.connect(REDIS_START_TIMEOUT_MS)
  } catch (err) {
    await redis.quit()
    throw new Error(`cannot reach Redis at ${describeRedis(config)}: ${(err as Error).message}`, { cause: err })
  }
  const core = createBrokerCore(config, redis, logger)
  const tokens = new Tokens(config.tokenSecrets, config.tokenAlgorithm)
  const name = ports.gateway === 0 ? undefined : `${hostname()}:${ports.gateway}`
  const node = new BrokerNode(core, config, logger, name)
  await node.start()
  const gateway = createGateway({ config, core, node, tokens, logger })
  const producer = createProducerListener({ config, tokens, api: core.producerApi, logger })
  const bound = {
    gateway: await gateway.listen(ports.gateway, config.host),
    producer: await producer.listen(ports.producer, config.host),
  }
  logger.info({ nodeId: node.id, ...bound }, 'node started')

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    gateway.stopListening()
    await Promise.all([producer.close(), node.stop(config.drainSpreadMs)])
    gateway.close()
    await redis.quit()
    logger.info({ nodeId: node.id }, 'node stopped')
  }
  return { core, node, gateway, producer, tokens, ports: bound, stop: () => (stopping ??= stop()) }
}

export function describeRedis(config: Pick<Config, 'redis'>): string {
  return config.redis.kind === 'standalone' ? config.redis.url : `cluster ${config.redis.nodes.join(',')}`
}
