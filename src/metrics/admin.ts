/** The admin app's metrics: what its HTTP API published and how it answered. */
import type { Registry } from 'prom-client'
import type { BrokerCore } from '../broker/core.js'
import { counterOf, gaugeOf, labelledCounterOf } from './read.js'

/** Counters of the admin app, kept by it and read by its metrics. */
export interface AdminCounters {
  /** Responses by HTTP status code. */
  readonly responses: Record<string, number>
  /** Error answers by ERRORS code. */
  readonly errors: Record<string, number>
  /** Connections and requests refused at a bound, by its config key (admin/server.ts, admin/pending-bodies.ts). */
  readonly refused: Record<string, number>
  /** Bytes of request bodies being read or parsed now (admin/pending-bodies.ts). */
  pendingBodyBytes: number
}

export const createAdminCounters = (): AdminCounters => ({
  responses: {},
  errors: {},
  refused: {},
  pendingBodyBytes: 0,
})

/**
 * The admin app's metrics. `core` is the admin app's own broker core: its
 * totals count only what the HTTP API published.
 */
export function registerAdminMetrics(
  registry: Registry,
  sources: { core: BrokerCore; counters: AdminCounters },
): void {
  const { core, counters } = sources
  counterOf(
    registry,
    'snapper_http_published_messages_total',
    'Messages from the HTTP publish API stored in Redis.',
    () => core.stats.totals.producerMessages,
  )
  counterOf(
    registry,
    'snapper_http_tracked_messages_total',
    'Tracked messages from the HTTP API (POST /v1/track) stored in Redis.',
    () => core.tracking.counters.tracked,
  )
  labelledCounterOf(
    registry,
    'snapper_http_responses_total',
    'Admin HTTP responses, by status code.',
    'status',
    () => counters.responses,
  )
  labelledCounterOf(
    registry,
    'snapper_http_errors_total',
    'Admin HTTP error answers, by error code.',
    'code',
    () => counters.errors,
  )
  labelledCounterOf(
    registry,
    'snapper_admin_refused_total',
    'Admin connections and requests refused at a bound, by its config key: adminMaxConnections (closed unanswered), openFilesReserve (closed unanswered while the process is short of open files), adminMaxConnectionsPerAddress (503 TOO_MANY_CONNECTIONS, unread), adminMaxPendingBodyBytes (503 BODIES_PENDING).',
    'reason',
    () => counters.refused,
  )
  gaugeOf(
    registry,
    'snapper_admin_pending_body_bytes',
    'Bytes of admin request bodies being read or parsed now, all requests together (bounded by adminMaxPendingBodyBytes).',
    () => counters.pendingBodyBytes,
  )
}
