import { LOG_LEVELS, MAX_QUERY_BYTES, TOKEN_ALGORITHMS, type Config } from './defaults.js'
import {
  integer,
  oneOf,
  toAddressRanges,
  toCount,
  toFlag,
  toList,
  toMemoryBytes,
  toMs,
  toPort,
  toPrefix,
  toRedis,
  toSecret,
  toText,
  toWebhookUrl,
  type Parser,
} from './parse.js'

export { ConfigError } from './parse.js'

interface Option<K extends keyof Config> {
  readonly env: string
  readonly parse: Parser<Config[K]>
  readonly doc: string
}

/**
 * Every option: its environment variable, how a raw value is read, and what it
 * means. This table is the README's config reference (a test keeps them in step).
 */
export const OPTIONS: { readonly [K in keyof Config]: Option<K> } = {
  host: {
    env: 'SNAPPER_HOST',
    parse: toText,
    doc: 'address every listener binds to (demo mode: 127.0.0.1 unless set)',
  },
  producerPort: {
    env: 'SNAPPER_PRODUCER_PORT',
    parse: toPort,
    doc: 'producer listener (TCP, RESP + JSON-RPC 2.0)',
  },
  gatewayPort: {
    env: 'SNAPPER_GATEWAY_PORT',
    parse: toPort,
    doc: 'consumer gateway of worker 0 (Engine.IO, /stats); worker i uses port + i',
  },
  adminPort: {
    env: 'SNAPPER_ADMIN_PORT',
    parse: toPort,
    doc: 'admin app: /stats, /healthz, /readyz, /metrics, HTTP publish API; 0 turns it off',
  },
  redis: {
    env: 'SNAPPER_REDIS',
    parse: toRedis,
    doc: 'one Redis URL, or comma-separated Redis Cluster nodes (`{"cluster": [...]}` in the file)',
  },
  localRedisMaxMemoryBytes: {
    env: 'SNAPPER_LOCAL_REDIS_MAX_MEMORY_BYTES',
    parse: toMemoryBytes,
    doc: '`maxmemory` (policy `noeviction`) of the redis-server `snapper start` runs when no Redis is configured: when full, publishes get STORE_UNAVAILABLE instead of messages being evicted',
  },
  redisPrefix: {
    env: 'SNAPPER_REDIS_PREFIX',
    parse: toPrefix,
    doc: 'prefix of every Redis key and channel (no `{` or `}`)',
  },
  redisReplicaAcks: {
    env: 'SNAPPER_REDIS_REPLICA_ACKS',
    parse: integer(0, 16),
    doc: 'replicas that must confirm a publish, subscribe or unsubscribe (WAIT, at most 1 s) before it is answered; fewer: STORE_UNAVAILABLE. 0: a failover may lose what the replicas had not received yet',
  },
  redisPingIntervalMs: {
    env: 'SNAPPER_REDIS_PING_INTERVAL_MS',
    parse: toMs,
    doc: 'how often each node PINGs Redis (every master of a cluster; 1 s timeout): one warn line when it stops answering, one info line when it answers again, and `snapper_redis_up`. A Redis that hangs with its connections open shows nowhere else',
  },
  redisRequestTimeoutMs: {
    env: 'SNAPPER_REDIS_REQUEST_TIMEOUT_MS',
    parse: toMs,
    doc: 'longest a request waits for Redis (a Redis that hangs, before the PING of `redisPingIntervalMs` finds it): an admin route or a gateway `/stats` then gets 503 `STORE_UNAVAILABLE` with `Retry-After` (a write may still be done once Redis answers, and its `reason` says so), a consumer handshake 503 with `retryAfterMs` (polling) or a close 1013 (websocket)',
  },
  tokenSecrets: {
    env: 'SNAPPER_TOKEN_SECRETS',
    parse: toList,
    doc: 'comma-separated HMAC secrets of producer and consumer tokens: the first signs, all verify. Required (`snapper start` refuses to run without; `--demo` makes a random one); at least 32 bytes each',
  },
  tokenAlgorithm: {
    env: 'SNAPPER_TOKEN_ALGORITHM',
    parse: oneOf(TOKEN_ALGORITHMS),
    doc: 'JWS algorithm of every token; a token with any other `alg` (`none` included) is refused',
  },
  operatorSecrets: {
    env: 'SNAPPER_OPERATOR_SECRETS',
    parse: toList,
    doc: 'comma-separated HMAC secrets of operator tokens (`name: "snapper"`: /stats, dashboard): the first signs, all verify; empty: the token secrets. Separate ones keep a leaked producer secret out of the admin app',
  },
  tokenClockSkewSec: {
    env: 'SNAPPER_TOKEN_CLOCK_SKEW_SEC',
    parse: integer(0, 3600),
    doc: "leeway for a token's `exp` and `nbf` against this host's clock",
  },
  tokenMaxLifetimeSec: {
    env: 'SNAPPER_TOKEN_MAX_LIFETIME_SEC',
    parse: integer(0, 2 ** 31 - 1),
    doc: 'refuse tokens whose `exp` lies further ahead than this; 0: no bound (snapper-producer signs 2 days)',
  },
  workers: {
    env: 'SNAPPER_WORKERS',
    parse: integer(0, 1024),
    doc: 'node processes on this host; 0 runs one node in the main process',
  },
  logLevel: { env: 'SNAPPER_LOG_LEVEL', parse: oneOf(LOG_LEVELS), doc: 'log level (JSON lines on stdout)' },
  logMaxRefusalsPerSec: {
    env: 'SNAPPER_LOG_MAX_REFUSALS_PER_SEC',
    parse: toCount,
    doc: 'lines a second per process, of each kind, for what a stranger can cause once per producer connection (refused: too many, its token, its frames) or consumer handshake (refused: its token, its codec); the ones left out are counted in one line when their second ends',
  },
  logMaxFailuresPerSec: {
    env: 'SNAPPER_LOG_MAX_FAILURES_PER_SEC',
    parse: toCount,
    doc: 'lines a second per process, of each kind, for what a Redis outage fails once per request or consumer (`redis command failed`: a producer call answered STORE_UNAVAILABLE; the connect, release or log read of a consumer; the subscribe of a room; a gateway `/stats` answered 503); the ones left out are counted in one line when their second ends, and the metrics count every one',
  },

  roomLogMaxLen: {
    env: 'SNAPPER_ROOM_LOG_MAX_LEN',
    parse: toCount,
    doc: 'messages a room log keeps at most',
  },
  publishMaxPendingBytes: {
    env: 'SNAPPER_PUBLISH_MAX_PENDING_BYTES',
    parse: toMemoryBytes,
    doc: 'bytes of published messages waiting to be stored in Redis (slow, or down); beyond, producer connections are not read and HTTP publishes get 503 `STORE_UNAVAILABLE`, until half of it is stored',
  },
  roomLogMaxBytes: {
    env: 'SNAPPER_ROOM_LOG_MAX_BYTES',
    parse: toMemoryBytes,
    doc: 'bytes of messages a room log keeps at most (the oldest go first); at least `maxMessageBytes`',
  },
  messageTtlSec: {
    env: 'SNAPPER_MESSAGE_TTL_SEC',
    parse: toCount,
    doc: 'how long a room log keeps a message (a consumer may be away this long)',
  },
  consumerTtlSec: {
    env: 'SNAPPER_CONSUMER_TTL_SEC',
    parse: toCount,
    doc: "how long a consumer's rooms and cursors live after it was last seen",
  },
  replacedConsumerTtlSec: {
    env: 'SNAPPER_REPLACED_CONSUMER_TTL_SEC',
    parse: toCount,
    doc: 'life left to a consumer that the same browser replaced with a new token (`snapper.ws` cookie)',
  },
  maxRoomBytes: { env: 'SNAPPER_MAX_ROOM_BYTES', parse: toCount, doc: 'longest room name (UTF-8 bytes)' },
  maxMessageBytes: {
    env: 'SNAPPER_MAX_MESSAGE_BYTES',
    parse: toCount,
    doc: 'longest message (UTF-8 bytes); longer ones are not accepted',
  },

  maxFrameBytes: {
    env: 'SNAPPER_MAX_FRAME_BYTES',
    parse: toCount,
    doc: 'largest producer RESP frame; a larger one gets an error and closes that connection',
  },
  producerMaxPending: {
    env: 'SNAPPER_PRODUCER_MAX_PENDING',
    parse: toCount,
    doc: 'producer requests in flight per connection before the broker pauses reading it',
  },
  producerMaxPendingBytes: {
    env: 'SNAPPER_PRODUCER_MAX_PENDING_BYTES',
    parse: toMemoryBytes,
    doc: "bytes of a producer connection's frames in flight (publishes not stored yet; each message counts 1 KiB more, its Redis work) before the broker pauses reading it, so that one flooding producer cannot queue seconds of Redis work ahead of the others; a larger frame is still read, alone",
  },
  producerSharedMaxPendingBytes: {
    env: 'SNAPPER_PRODUCER_SHARED_MAX_PENDING_BYTES',
    parse: toMemoryBytes,
    doc: "bytes of all producer connections' frames in flight on a node, weighed as for `producerMaxPendingBytes`; beyond, a connection whose producer (its token's `id`: all connections of one id together) holds its share or more (this ÷ the producers with work in flight) is not read until its turn, producers in turn, while the others are, so that a producer with many connections cannot queue seconds of Redis work ahead of a light one",
  },
  producerAuthTimeoutMs: {
    env: 'SNAPPER_PRODUCER_AUTH_TIMEOUT_MS',
    parse: toMs,
    doc: 'time a producer has to send `auth` after connecting',
  },
  maxProducerConnections: {
    env: 'SNAPPER_MAX_PRODUCER_CONNECTIONS',
    parse: toCount,
    doc: 'producer connections per node',
  },
  maxAuthFrameBytes: {
    env: 'SNAPPER_MAX_AUTH_FRAME_BYTES',
    parse: toCount,
    doc: 'largest first frame (the `auth` request) of a producer connection; a larger one gets FRAME_TOO_LARGE and the connection closes',
  },
  maxUnauthenticatedProducers: {
    env: 'SNAPPER_MAX_UNAUTHENTICATED_PRODUCERS',
    parse: toCount,
    doc: 'producer connections per node that have not authenticated yet; further ones get TOO_MANY_CONNECTIONS and are closed',
  },
  maxUnauthenticatedProducersPerAddress: {
    env: 'SNAPPER_MAX_UNAUTHENTICATED_PRODUCERS_PER_ADDRESS',
    parse: toCount,
    doc: 'the same, from one client address (the TCP peer)',
  },
  maxRoomsPerPublish: {
    env: 'SNAPPER_MAX_ROOMS_PER_PUBLISH',
    parse: toCount,
    doc: 'distinct rooms one publish (TCP frame or HTTP body) may name; more: TOO_MANY_ROOMS, nothing of it stored',
  },
  maxRoomsPerConsumer: {
    env: 'SNAPPER_MAX_ROOMS_PER_CONSUMER',
    parse: toCount,
    doc: 'rooms one consumer may be in, its own user room included (each is read at its every handshake); a subscribe past it: CONSUMER_ROOMS_FULL, nothing changed',
  },

  pingIntervalMs: { env: 'SNAPPER_PING_INTERVAL_MS', parse: toMs, doc: 'Engine.IO pingInterval' },
  pingTimeoutMs: { env: 'SNAPPER_PING_TIMEOUT_MS', parse: toMs, doc: 'Engine.IO pingTimeout' },
  upgradeTimeoutMs: {
    env: 'SNAPPER_UPGRADE_TIMEOUT_MS',
    parse: toMs,
    doc: 'time a polling session has to finish its websocket upgrade',
  },
  maxPayloadBytes: {
    env: 'SNAPPER_MAX_PAYLOAD_BYTES',
    parse: toCount,
    doc: 'largest Engine.IO HTTP body or websocket message (advertised as maxPayload)',
  },
  maxQueryBytes: {
    env: 'SNAPPER_MAX_QUERY_BYTES',
    parse: integer(1, MAX_QUERY_BYTES),
    doc: 'longest query string of a consumer request (at most 3072: what uWebSockets.js always reads)',
  },
  maxSessions: {
    env: 'SNAPPER_MAX_SESSIONS',
    parse: toCount,
    doc: 'consumer sessions per node; further handshakes get 503',
  },
  maxSessionsPerUser: {
    env: 'SNAPPER_MAX_SESSIONS_PER_USER',
    parse: integer(0, 2 ** 31 - 1),
    doc: "consumer sessions one user (the token's `userId`) may hold per node, counted by consumer id: a reconnect replacing its own session always passes; further handshakes get 429. 0: no limit",
  },
  maxHandshakesPerUserPerSec: {
    env: 'SNAPPER_MAX_HANDSHAKES_PER_USER_PER_SEC',
    parse: integer(0, 2 ** 31 - 1),
    doc: "consumer handshakes one user (the token's `userId`) may make per second per node, reconnects of the same token included (each is a Redis script and a takeover); further ones get 429 `Too many handshakes for this user`. 0: no limit",
  },
  maxHandshakesPerAddressPerSec: {
    env: 'SNAPPER_MAX_HANDSHAKES_PER_ADDRESS_PER_SEC',
    parse: integer(0, 2 ** 31 - 1),
    doc: 'new consumer sessions one client address may open per second per node; further ones get 429. 0: no limit. Behind a proxy, set `trustedProxies`',
  },
  perAddressIpv6PrefixBits: {
    env: 'SNAPPER_PER_ADDRESS_IPV6_PREFIX_BITS',
    parse: integer(1, 128),
    doc: 'the per-address limits (`maxHandshakesPerAddressPerSec`, `maxUnauthenticatedProducersPerAddress`, `adminMaxConnectionsPerAddress`) count an IPv6 client by this many leading bits of its address, its network: a site may use any address of its /64 (or wider) prefix, so exact addresses would bound nothing. 128: each address apart. IPv4 addresses count one by one',
  },
  trustedProxies: {
    env: 'SNAPPER_TRUSTED_PROXIES',
    parse: toAddressRanges,
    doc: "comma-separated addresses or CIDR ranges of proxies (nginx) whose `X-Forwarded-For` / `X-Real-IP` names the consumer's address; empty: these headers are ignored",
  },
  corsOrigins: {
    env: 'SNAPPER_CORS_ORIGINS',
    parse: toList,
    doc: 'comma-separated origins allowed to open sessions from a browser; empty allows any',
  },
  batchMaxMessages: {
    env: 'SNAPPER_BATCH_MAX_MESSAGES',
    parse: toCount,
    doc: 'messages per delivery batch (one JSON-RPC `publish` awaiting its ack)',
  },
  batchMaxBytes: {
    env: 'SNAPPER_BATCH_MAX_BYTES',
    parse: toCount,
    doc: "messages' length per delivery batch, in UTF-16 code units (bytes for ASCII text); at least one message goes, whatever its size",
  },
  consumerMaxQueue: {
    env: 'SNAPPER_CONSUMER_MAX_QUEUE',
    parse: toCount,
    doc: 'messages held in memory per consumer; beyond that it reads from the room logs',
  },
  consumerMaxQueueBytes: {
    env: 'SNAPPER_CONSUMER_MAX_QUEUE_BYTES',
    parse: toMemoryBytes,
    doc: 'UTF-8 bytes of messages held in memory per consumer (one message at least); beyond that it reads from the room logs',
  },
  recentMaxMessages: {
    env: 'SNAPPER_RECENT_MAX_MESSAGES',
    parse: integer(0, 2 ** 31 - 1),
    doc: "messages a room keeps in a node's memory for members that fall behind or (re)join, read there instead of Redis; 0 keeps none",
  },
  recentMaxBytesPerRoom: {
    env: 'SNAPPER_RECENT_MAX_BYTES_PER_ROOM',
    parse: toMemoryBytes,
    doc: "bytes one room's recent messages may hold in memory (each counted as 5 × its UTF-8 bytes + 1.5 KiB: the message, its JSON, its frame, packet and bytes, their objects)",
  },
  recentMaxBytes: {
    env: 'SNAPPER_RECENT_MAX_BYTES',
    parse: toMemoryBytes,
    doc: 'bytes the recent messages of all rooms of a node may hold together (counted the same way); the room that grows gives back half its window, and more while over it',
  },
  logReadMaxBytes: {
    env: 'SNAPPER_LOG_READ_MAX_BYTES',
    parse: toMemoryBytes,
    doc: 'bytes of messages one room log read returns at most (one message at least)',
  },
  logReadMaxRoomsPerCall: {
    env: 'SNAPPER_LOG_READ_MAX_ROOMS_PER_CALL',
    parse: toCount,
    doc: 'rooms one room log read script call reads at most: the reads asked for in one turn go together',
  },
  consumerMaxBackpressureBytes: {
    env: 'SNAPPER_CONSUMER_MAX_BACKPRESSURE_BYTES',
    parse: toCount,
    doc: 'bytes buffered towards one consumer before it is closed as too slow',
  },
  consumerMaxBackpressureBytesTotal: {
    env: 'SNAPPER_CONSUMER_MAX_BACKPRESSURE_BYTES_TOTAL',
    parse: integer(0, Number.MAX_SAFE_INTEGER),
    doc: 'bytes buffered towards all websocket consumers of a node together; past it, a consumer holding at least a sixteenth of `consumerMaxBackpressureBytes` and the average is closed as too slow on its next send (it resumes from its cursor). 0: no bound',
  },
  consumerMaxInputBytesPerSec: {
    env: 'SNAPPER_CONSUMER_MAX_INPUT_BYTES_PER_SEC',
    parse: integer(0, 2 ** 31 - 1),
    doc: "bytes one user's consumer sessions on a node may send together a second on average (acks, requests: websocket messages and POST bodies), `maxPayloadBytes` at once; a reconnect or a new token gets no fresh allowance; past it the session is closed. 0: no limit",
  },
  consumerInputBytesPerPacket: {
    env: 'SNAPPER_CONSUMER_INPUT_BYTES_PER_PACKET',
    parse: integer(0, 2 ** 20),
    doc: 'bytes each Engine.IO packet a consumer sends (websocket message, packet of a POST) counts against `consumerMaxInputBytesPerSec` beside its own: a one-byte ping costs the node as much as a short request',
  },
  ackTimeoutMs: {
    env: 'SNAPPER_ACK_TIMEOUT_MS',
    parse: toMs,
    doc: 'time a consumer has to acknowledge a batch before its session is closed',
  },
  consumerRetryAfterMs: {
    env: 'SNAPPER_CONSUMER_RETRY_AFTER_MS',
    parse: toMs,
    doc: 'what a node refusing a handshake with 503 (full, draining) or 429 (`maxSessionsPerUser`) tells clients to wait: `Retry-After`, and `retryAfterMs` in the polling body',
  },
  wsCompression: {
    env: 'SNAPPER_WS_COMPRESSION',
    parse: toFlag,
    doc: "offer permessage-deflate on consumer websockets (uWS's shared compressor): fewer bytes on the wire, more CPU per message",
  },

  cursorFlushMs: {
    env: 'SNAPPER_CURSOR_FLUSH_MS',
    parse: toMs,
    doc: 'how often acknowledged cursors are written to Redis',
  },
  takeoverWaitMs: {
    env: 'SNAPPER_TAKEOVER_WAIT_MS',
    parse: toMs,
    doc: 'longest a node taking over a reconnecting consumer waits for the node that held it (still alive by its liveness key) to write its cursors; then it starts from those in Redis, and what that node had acknowledged since its last flush comes again',
  },
  nodeTtlMs: {
    env: 'SNAPPER_NODE_TTL_MS',
    parse: toMs,
    doc: 'a node that stops refreshing its liveness for this long no longer counts its consumers',
  },
  deadNodeRetentionSec: {
    env: 'SNAPPER_DEAD_NODE_RETENTION_SEC',
    parse: toCount,
    doc: 'how long a node that stopped reporting without a clean stop (a crash) stays listed in /stats and the dashboard; then its report is dropped from Redis',
  },
  statsFlushMs: {
    env: 'SNAPPER_STATS_FLUSH_MS',
    parse: toMs,
    doc: 'how often the stats counters are written to Redis',
  },
  drainTimeoutMs: {
    env: 'SNAPPER_DRAIN_TIMEOUT_MS',
    parse: toMs,
    doc: 'longest a graceful shutdown (SIGTERM) may take',
  },
  drainSpreadMs: {
    env: 'SNAPPER_DRAIN_SPREAD_MS',
    parse: integer(0, 600_000),
    doc: 'consumers are closed spread over this window on shutdown',
  },

  trackMaxReceipts: {
    env: 'SNAPPER_TRACK_MAX_RECEIPTS',
    // One receipt read is one HGETALL and one answer of them all: 100,000 held a node's loop 1.8 s (README).
    parse: integer(1, 10_000),
    doc: 'receipts a tracked message records at most (the consumers `receipt` lists, about 110 bytes of Redis each; at most 10000); later acks are only counted (`moreAcks`)',
  },
  trackReceiptRetrySec: {
    env: 'SNAPPER_TRACK_RECEIPT_RETRY_SEC',
    parse: toCount,
    doc: 'how long a receipt write that Redis refused for a passing reason (a Cluster failover, a master back as a replica) is retried after the ack, 100 ms doubling up to 2 s apart; past it that ack is not listed (the consumer does not ack again) and counts in `snapper_redis_errors_total`',
  },
  escalationWebhookUrl: {
    env: 'SNAPPER_ESCALATION_WEBHOOK_URL',
    parse: toWebhookUrl,
    doc: 'URL that tracked messages nobody acknowledged within their `escalateAfterMs` are POSTed to; unset: escalation is off',
  },
  escalationWebhookSecret: {
    env: 'SNAPPER_ESCALATION_WEBHOOK_SECRET',
    parse: toSecret,
    doc: 'HMAC-SHA256 secret that signs every webhook request (`X-Snapper-Signature`); required with the URL',
  },
  escalationTimeoutMs: {
    env: 'SNAPPER_ESCALATION_TIMEOUT_MS',
    parse: toMs,
    doc: 'longest a webhook request may take before it counts as failed',
  },
  escalationRetrySec: {
    env: 'SNAPPER_ESCALATION_RETRY_SEC',
    parse: toCount,
    doc: 'how long a failing webhook is retried (with backoff, up to 1 min apart) after the escalation fell due',
  },
  escalationPollMs: {
    env: 'SNAPPER_ESCALATION_POLL_MS',
    parse: toMs,
    doc: 'how often each node looks for escalations that fell due (their timing is this precise)',
  },
  escalationMaxInFlight: {
    env: 'SNAPPER_ESCALATION_MAX_IN_FLIGHT',
    parse: integer(1, 10_000),
    doc: 'webhook requests each node has going at once at most: only that many hanging at once make the next due escalations wait',
  },

  adminMaxBodyBytes: {
    env: 'SNAPPER_ADMIN_MAX_BODY_BYTES',
    parse: toCount,
    doc: 'largest body of an admin HTTP request',
  },
  adminMaxPendingBodyBytes: {
    env: 'SNAPPER_ADMIN_MAX_PENDING_BODY_BYTES',
    parse: toMemoryBytes,
    doc: 'bytes of admin request bodies being read or parsed at once, all requests together (a body by its `Content-Length` before it is read; a chunked or compressed one as `adminMaxBodyBytes`, what it may grow to); a request whose body does not fit gets 503 `BODIES_PENDING` (with `Retry-After`) unread. At least `adminMaxBodyBytes`',
  },
  adminMaxConnections: {
    env: 'SNAPPER_ADMIN_MAX_CONNECTIONS',
    parse: toCount,
    doc: 'connections the admin app holds at once; more are closed at once. Its process (the primary) also takes the producer connections: silent connections to the admin port must not use up its open files',
  },
  adminMaxConnectionsPerAddress: {
    env: 'SNAPPER_ADMIN_MAX_CONNECTIONS_PER_ADDRESS',
    parse: integer(0, 2 ** 31 - 1),
    doc: 'of those, connections one client address (the TCP peer) holds at once; more are answered 503 `TOO_MANY_CONNECTIONS` and closed, so that one address cannot take every place (and with them `/healthz` and `/readyz`). 0: no limit. Behind a proxy every client has the address of the proxy: raise it there, and for HTTP producers that keep a large pool from one host',
  },
  adminRequestTimeoutMs: {
    env: 'SNAPPER_ADMIN_REQUEST_TIMEOUT_MS',
    parse: toMs,
    doc: 'longest an admin request may take to arrive in full, head and body (a silent or trickling connection gets 408 and is closed)',
  },
  openFilesReserve: {
    env: 'SNAPPER_OPEN_FILES_RESERVE',
    parse: toCount,
    doc: "files each node process holds in reserve (on `/dev/null`) that its consumer gateway cannot take. When the process's open files run out (connections that send nothing are bounded by no other limit of the gateway's), the gateway stops accepting (new connections are refused) and the reserve is given back to the node's Redis connections, producers and probes, until twice the reserve is free again (sessions stay; `/readyz` says `open files exhausted` meanwhile). At most a quarter of the open-files limit (start-up lowers it to that, with a warning). See [Limits and bad input](#limits-and-bad-input)",
  },
  demo: {
    env: 'SNAPPER_DEMO',
    parse: toFlag,
    doc: 'demo mode: the admin app serves /demo/ and signs consumer tokens for anyone; a random token secret if none is set; listens on 127.0.0.1 unless `host` is set. Never in production',
  },
}
