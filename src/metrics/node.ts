/**
 * A broker node's metrics: its consumer gateway, producer listener, delivery
 * and Redis core, each read at scrape time (see index.ts). One function, in
 * the order a scrape lists them.
 */
import type { Registry } from 'prom-client'
import type { BrokerCore } from '../broker/core.js'
import type { EscalationCounters } from '../broker/escalation.js'
import { PLATFORMS } from '../broker/latency.js'
import type { BrokerNode } from '../broker/node.js'
import type { OpenFilesCounters } from '../open-files-guard.js'
import { counterOf, gaugeOf, histogramOf, labelledCounterOf } from './read.js'

/** The parts of a node that metrics read; all optional but the node, so tests can pass what they have. */
export interface NodeSources {
  readonly core: BrokerCore
  readonly node: BrokerNode
  /** Engine.IO sessions of the consumer gateway. */
  readonly sessions?: { readonly size: number }
  /** Gateway counters (handshakes, refused...). */
  readonly gateway?: {
    readonly handshakes: number
    readonly refused: number
    readonly userLimited: number
    readonly userRateLimited: number
    readonly invalid: number
  }
  /** The gateway's Engine.IO server. */
  readonly engine?: {
    readonly handshakesRateLimited: number
    readonly handshakesFull: number
    readonly handshakesLate: number
    readonly inputLimited: number
    readonly replacedClosesDropped: number
    readonly bufferedBytes: number
    readonly tooSlow: { readonly session: number; readonly node: number }
  }
  /** The node's escalator, when a webhook is configured. */
  readonly escalations?: EscalationCounters
  /** The node's Redis watchdog: whether Redis answers its PINGs. */
  readonly redisWatchdog?: { readonly isUp: boolean }
  /** The open-files guard's counters, when the node owns its process (src/open-files-guard.ts). */
  readonly openFiles?: () => OpenFilesCounters | undefined
  /** Producer listener snapshot. */
  readonly producer?: {
    readonly stats: {
      readonly connections: number
      readonly unauthenticated: number
      readonly ignored: number
      readonly errors: Readonly<Record<string, number | undefined>>
    }
  }
}

/**
 * The metrics of one broker node (consumer gateway, producer listener, Redis
 * core), on `registry`. Register a node once per registry: names are
 * unique within one.
 */
export function registerNodeMetrics(registry: Registry, sources: NodeSources): void {
  const { core, node, sessions, gateway, engine, producer, escalations, redisWatchdog, openFiles } = sources
  const { totals } = core.stats
  const counters = node.counters

  gaugeOf(
    registry,
    'snapper_nodes',
    'Broker nodes in this scrape: 1 per process, summed over a cluster.',
    () => 1,
  )
  counterOf(
    registry,
    'snapper_open_files_exhausted_total',
    "Times this process's open files ran out: its consumer gateway stopped accepting until twice openFilesReserve were free again.",
    () => openFiles?.()?.exhausted ?? 0,
  )
  counterOf(
    registry,
    'snapper_open_files_refused_total',
    'Producer and admin connections closed at once because fewer than half of openFilesReserve files were free.',
    () => openFiles?.()?.refused ?? 0,
  )
  gaugeOf(
    registry,
    'snapper_consumer_sessions',
    'Engine.IO sessions open on the consumer gateway.',
    () => sessions?.size ?? 0,
  )
  gaugeOf(
    registry,
    'snapper_consumers_online',
    'Consumers whose session is open on this node (not those still being taken over).',
    () => node.online,
  )
  gaugeOf(
    registry,
    'snapper_consumers_taking_over',
    'Consumers this node is taking over (their takes wait for Redis: one that hangs keeps them here until it answers).',
    () => node.takingOver,
  )
  gaugeOf(
    registry,
    'snapper_rooms_followed',
    'Rooms this node follows for its consumers.',
    () => node.roomCount,
  )
  gaugeOf(
    registry,
    'snapper_backlog_messages',
    'Messages waiting in outboxes, not yet sent to their consumer.',
    () => node.backlog(),
  )
  gaugeOf(
    registry,
    'snapper_publish_pending_bytes',
    'Bytes of published messages handed to Redis and not stored yet (bounded by publishMaxPendingBytes).',
    () => core.producerApi.backlog.bytes,
  )
  gaugeOf(
    registry,
    'snapper_redis_offline_commands',
    "Redis commands held in the client's offline queue while Redis is down.",
    () => core.redis.offlineCommands(),
  )
  // Only with a watchdog: without one, neither 1 nor 0 would be true.
  if (redisWatchdog)
    gaugeOf(
      registry,
      'snapper_redis_up',
      "1 while Redis answers this node's watchdog PING (every master of a cluster), 0 while not; summed over a cluster's workers, the workers that reach Redis.",
      () => (redisWatchdog.isUp ? 1 : 0),
    )
  if (redisWatchdog && core.redis.isCluster)
    gaugeOf(
      registry,
      'snapper_redis_masters_not_answering',
      "Masters of the Redis Cluster that did not answer this node's last watchdog PING (they are named in /readyz and the log): what needs their slots is refused, the rest is served. Summed over a cluster's workers (--workers): each counts them.",
      () => core.redis.mastersDown.length,
    )
  gaugeOf(
    registry,
    'snapper_recent_bytes',
    'Bytes of recent room messages held in memory for consumers that fall behind or rejoin.',
    () => node.recentBytes,
  )
  gaugeOf(
    registry,
    'snapper_producer_connections',
    'Producer TCP connections open.',
    () => producer?.stats.connections ?? 0,
  )
  gaugeOf(
    registry,
    'snapper_producer_unauthenticated_connections',
    'Producer TCP connections that have not authenticated yet.',
    () => producer?.stats.unauthenticated ?? 0,
  )

  counterOf(
    registry,
    'snapper_messages_published_total',
    'Messages from producer TCP connections stored in Redis.',
    () => totals.producerMessages,
  )
  counterOf(
    registry,
    'snapper_append_calls_total',
    'Redis script calls that stored published messages: one per hash slot per event-loop turn.',
    () => core.log.appendCalls,
  )
  counterOf(
    registry,
    'snapper_messages_delivered_total',
    'Messages delivered to consumers and acknowledged by them.',
    () => totals.consumerMessages,
  )
  counterOf(
    registry,
    'snapper_consumer_connects_total',
    'Consumer sessions opened on this node.',
    () => totals.consumers,
  )
  counterOf(
    registry,
    'snapper_batches_sent_total',
    'Delivery batches sent to consumers (resends included).',
    () => counters.batchesSent,
  )
  counterOf(
    registry,
    'snapper_log_reads_total',
    'Room log reads from Redis (catch-up, gaps, reconnects).',
    () => counters.logReads,
  )
  counterOf(
    registry,
    'snapper_log_read_errors_total',
    'Room log reads that failed and were retried.',
    () => counters.logReadErrors,
  )
  counterOf(
    registry,
    'snapper_announcements_total',
    'Room announcements received from Redis pub/sub.',
    () => node.announcements.received,
  )
  counterOf(
    registry,
    'snapper_announcements_dropped_total',
    'Room announcements that could not be decoded: dropped, their messages read from the log at the next one.',
    () => node.announcements.dropped,
  )
  counterOf(registry, 'snapper_cursor_commits_total', 'Cursor writes to Redis.', () => counters.cursorCommits)
  counterOf(
    registry,
    'snapper_gaps_total',
    'Holes found in what consumers should get: messages no longer in the room log (each told with a gap notice).',
    () => counters.gaps,
  )
  counterOf(
    registry,
    'snapper_gap_messages_total',
    'Messages consumers missed in those holes, where the count is known.',
    () => counters.gapMessages,
  )
  counterOf(
    registry,
    'snapper_redis_errors_total',
    "Redis commands of the node's own work (cursors, hand-overs, periodic tasks) that failed, each counted here, logged (at most logMaxFailuresPerSec lines a second of each kind), and retried or healed later. Not publishes (snapper_producer_errors_total), not outages: commands wait through those (snapper_redis_up).",
    () => counters.redisErrors,
  )
  counterOf(
    registry,
    'snapper_ack_timeouts_total',
    'Consumer sessions closed because a batch was not acknowledged in time.',
    () => counters.ackTimeouts,
  )
  counterOf(
    registry,
    'snapper_kicks_total',
    'Consumer sessions handed over to another node.',
    () => counters.kicks,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_total',
    'Consumer handshakes received.',
    () => gateway?.handshakes ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_refused_total',
    'Consumer handshakes refused: a bad token (403), an unknown codec (400), or the node cannot take the consumer now (503: Redis not ready, or not answering the handshake within redisRequestTimeoutMs). Not the 429s, counted apart.',
    () => (gateway?.refused ?? 0) + (engine?.handshakesLate ?? 0),
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_rate_limited_total',
    'Consumer handshakes refused with 429: their address was over maxHandshakesPerAddressPerSec.',
    () => engine?.handshakesRateLimited ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_full_total',
    'Consumer handshakes refused with 503: the node held maxSessions sessions.',
    () => engine?.handshakesFull ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_user_limited_total',
    'Consumer handshakes refused with 429: their user held maxSessionsPerUser sessions on this node.',
    () => gateway?.userLimited ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_handshakes_user_rate_limited_total',
    'Consumer handshakes refused with 429: their user had made maxHandshakesPerUserPerSec this second on this node.',
    () => gateway?.userRateLimited ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_input_limited_total',
    'Consumer sessions closed for sending more than consumerMaxInputBytesPerSec.',
    () => engine?.inputLimited ?? 0,
  )
  gaugeOf(
    registry,
    'snapper_consumer_buffered_bytes',
    'Bytes buffered towards all websocket consumers of this node now, not yet taken by the kernel (bounded by consumerMaxBackpressureBytesTotal).',
    () => engine?.bufferedBytes ?? 0,
  )
  labelledCounterOf(
    registry,
    'snapper_consumer_too_slow_total',
    "Consumer sessions closed as too slow, by the bound: consumerMaxBackpressureBytes (past it on their own), consumerMaxBackpressureBytesTotal (among the biggest while all consumers' buffers were past it).",
    'reason',
    () => ({
      consumerMaxBackpressureBytes: engine?.tooSlow.session,
      consumerMaxBackpressureBytesTotal: engine?.tooSlow.node,
    }),
  )
  counterOf(
    registry,
    'snapper_consumer_replaced_closes_dropped_total',
    'Consumer polling POSTs carrying a close packet dropped (400) as the client a newer handshake of its consumer replaced: each marks a takeover race.',
    () => engine?.replacedClosesDropped ?? 0,
  )
  counterOf(
    registry,
    'snapper_consumer_invalid_messages_total',
    'Consumer messages that were not acks or requests.',
    () => gateway?.invalid ?? 0,
  )
  counterOf(
    registry,
    'snapper_tracked_messages_total',
    'Tracked messages (producer method track) stored in Redis.',
    () => core.tracking.counters.tracked,
  )
  counterOf(
    registry,
    'snapper_receipts_total',
    'Acknowledgements of tracked messages recorded as receipts.',
    () => core.tracking.counters.receipts,
  )
  counterOf(
    registry,
    'snapper_receipts_unlisted_total',
    'Acknowledgements of tracked messages past their trackMaxReceipts: counted in the receipt (moreAcks), not recorded.',
    () => core.tracking.counters.unlistedAcks,
  )
  labelledCounterOf(
    registry,
    'snapper_escalations_total',
    'Escalations of tracked messages, by result: sent (the webhook answered 2xx), failed (an attempt, retried later), abandoned (failed for escalationRetrySec), acknowledged (in time: no webhook).',
    'result',
    () => {
      if (!escalations) return {}
      const { sent, failed, abandoned, acknowledged } = escalations
      return { sent, failed, abandoned, acknowledged }
    },
  )
  histogramOf(
    registry,
    'snapper_delivery_latency_seconds',
    'Time from a message being stored to its acknowledgement by a consumer, by platform.',
    () => PLATFORMS.map(platform => ({ labels: { platform }, counts: node.deliveryLatency.of(platform) })),
  )
  histogramOf(
    registry,
    'snapper_ack_latency_seconds',
    'Time from sending a delivery batch to its acknowledgement.',
    () => [{ labels: {}, counts: node.ackLatency }],
  )
  labelledCounterOf(
    registry,
    'snapper_producer_errors_total',
    'Errors answered to producers, by code.',
    'code',
    () => producer?.stats.errors ?? {},
  )
  counterOf(
    registry,
    'snapper_producer_notifications_ignored_total',
    'Producer notifications ignored, unanswered: an unknown method, a publish without params, a late auth.',
    () => producer?.stats.ignored ?? 0,
  )
}
