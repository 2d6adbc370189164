import { platformOf } from '../auth/token.js'
import { BatchIds } from './batch.js'
import type { BrokerCore } from './core.js'
import type { CursorFlush } from './cursor-flush.js'
import type { Fanout } from './fanout.js'
import type { DeliveryLatency, LatencyCounts } from './latency.js'
import type { NodeContext } from './node-context.js'
import type { NodeConfig } from './node.js'
import type { ConsumerSink, OutboxHost } from './outbox.js'

/** The parts of a node its outboxes reach through their host. */
export interface OutboxHostParts {
  readonly config: NodeConfig
  readonly context: NodeContext
  readonly core: Pick<BrokerCore, 'stats' | 'tracking'>
  readonly fanout: Fanout
  readonly cursors: CursorFlush
  /** Time from sending each batch to its ack. */
  readonly ackLatency: LatencyCounts
  /** Time from each message being stored to its ack, per platform. */
  readonly deliveryLatency: DeliveryLatency
}

/**
 * What the outboxes ask of their node: log reads (through the fan-out's
 * memory), batch ids, the consumer's sink, and the cursor flush for
 * acknowledged cursors. The gateway talks to the node, never to this.
 */
export function outboxHost<S extends ConsumerSink>(parts: OutboxHostParts): OutboxHost<S> {
  const { config, context, fanout, cursors, ackLatency, deliveryLatency } = parts
  const { counters, log } = context
  const { stats, tracking } = parts.core
  const batchIds = new BatchIds()
  return {
    batchMaxMessages: config.batchMaxMessages,
    batchMaxBytes: config.batchMaxBytes,
    maxQueue: config.consumerMaxQueue,
    maxQueueBytes: config.consumerMaxQueueBytes,
    log,
    read: (room, after, count) => fanout.read(room, after, count),
    newBatchId: () => batchIds.next(),
    send: (outbox, batch) => {
      counters.batchesSent++
      outbox.sink?.send(batch)
    },
    acknowledged: (outbox, { entries, hasTracked }) => {
      const now = Date.now()
      counters.messagesAcked += entries.length
      ackLatency.add(now - outbox.inflightSince)
      deliveryLatency.recordBatch(platformOf(outbox.consumerId), entries, now)
      stats.delivered(entries.length)
      cursors.acknowledged(outbox)
      // Only a batch with a tracked message costs Redis anything here (its receipts).
      if (hasTracked)
        tracking
          .recordAcks(outbox.consumerId, outbox.userId, entries, now)
          .catch((err: unknown) => context.redisError(err, 'receipt write failed'))
    },
    readFailed: (outbox, room, err) => {
      counters.logReadErrors++
      context.failures.warn(log, { err, consumerId: outbox.consumerId, room }, 'log read failed, retrying')
    },
    holeFound: (outbox, room, missed) => {
      counters.gaps++
      counters.gapMessages += missed ?? 0
      log.debug({ consumerId: outbox.consumerId, room, missed }, 'messages no longer in the room log')
    },
  }
}
