import { availableParallelism, totalmem } from 'node:os'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export const TOKEN_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const

/**
 * uWebSockets.js reads a request head of up to 4 KiB whatever the network does, a longer one only
 * when it arrives in one read, and otherwise closes the connection unanswered (README, Limits
 * and bad input): the longest query allowed leaves 1 KiB of that for the rest of the head.
 */
export const MAX_QUERY_BYTES = 3072
export type TokenAlgorithm = (typeof TOKEN_ALGORITHMS)[number]

/** Where Redis is: one server, or the seed nodes of a Redis Cluster. */
export type RedisTarget =
  | { readonly kind: 'standalone'; readonly url: string }
  | { readonly kind: 'cluster'; readonly nodes: readonly string[] }

/**
 * Every option of the broker, with its unit in its name and its default.
 * The README's config section is generated from `OPTIONS` in `env.ts`, which
 * documents each of these fields once more for operators.
 */
export interface Config {
  /** Address every listener binds to; `snapper start --demo` binds 127.0.0.1 unless it is set. @default '0.0.0.0' */
  readonly host: string
  /** TCP port of the producer listener (RESP + JSON-RPC). @default 7700 */
  readonly producerPort: number
  /** Port of the consumer gateway of worker 0; worker i listens on gatewayPort + i. @default 7701 */
  readonly gatewayPort: number
  /**
   * Port of the admin app (Koa: /stats, /metrics, HTTP publish API); 0 turns it off. Below the
   * producer port, because worker i's gateway takes gatewayPort + i. @default 7699
   */
  readonly adminPort: number
  /** Redis: one server, or a Redis Cluster. @default standalone redis://127.0.0.1:6379 */
  readonly redis: RedisTarget
  /**
   * `maxmemory` of the redis-server that `snapper start` runs itself when no Redis is configured,
   * in bytes, with `noeviction`: a full Redis refuses writes (STORE_UNAVAILABLE) instead of
   * dropping messages. @default a quarter of this host's memory
   */
  readonly localRedisMaxMemoryBytes: number
  /** Prefix of every Redis key and channel. @default 'SNP' */
  readonly redisPrefix: string
  /**
   * Replicas that must confirm a publish, subscribe or unsubscribe before it is answered (WAIT on
   * the room's or consumer's master, at most 1 s; fewer in time: it fails with STORE_UNAVAILABLE). 0: the master's reply is enough,
   * and a failover may lose what its replica had not received yet. @default 0
   */
  readonly redisReplicaAcks: number
  /**
   * How often each node PINGs Redis (1 s timeout) to log when it stops and starts answering again
   * and to set snapper_redis_up: a Redis that hangs with its connections open shows nowhere
   * else, in ms. @default 5000
   */
  readonly redisPingIntervalMs: number
  /**
   * Longest a request waits for Redis, in ms: an admin route (then 503 STORE_UNAVAILABLE; a write
   * may still be done once Redis answers, its reason says so) or a consumer handshake taking its
   * consumer over (then 503 and retryAfterMs on polling, close 1013 on a websocket). For a Redis
   * that hangs before the PING of redisPingIntervalMs finds it. @default 5000
   */
  readonly redisRequestTimeoutMs: number
  /**
   * HMAC secrets of producer and consumer tokens; the first signs, all verify (rotation). Required
   * by `snapper start` (`--demo` makes a random one). @default []
   */
  readonly tokenSecrets: readonly string[]
  /** JWS algorithm for the tokens the broker signs and accepts; any other is refused. @default 'HS256' */
  readonly tokenAlgorithm: TokenAlgorithm
  /**
   * HMAC secrets of operator tokens (`name: 'snapper'`: /stats, dashboard); the first signs, all
   * verify. Empty: the token secrets. @default []
   */
  readonly operatorSecrets: readonly string[]
  /** Leeway for a token's `exp` and `nbf` against this host's clock, in seconds. @default 0 */
  readonly tokenClockSkewSec: number
  /** Refuse tokens that expire more than this far ahead, in seconds; 0: no bound. @default 0 */
  readonly tokenMaxLifetimeSec: number
  /** Node processes on this host (`snapper start`). @default one per core */
  readonly workers: number
  /** pino log level. @default 'info' */
  readonly logLevel: LogLevel
  /**
   * Lines a second per process, of each kind, for what a stranger can cause once per producer
   * connection (refused: too many, its token, its frames) or consumer handshake (its token, its
   * codec); the rest are counted in one line. @default 10
   */
  readonly logMaxRefusalsPerSec: number
  /**
   * Lines a second per process, of each kind, for what a Redis outage fails once per request or
   * consumer (a publish answered STORE_UNAVAILABLE, a consumer's connect, release or log read);
   * the rest are counted in one line, and the metrics count every one. @default 10
   */
  readonly logMaxFailuresPerSec: number

  /** Messages a room log keeps at most (older ones are trimmed). @default 10000 */
  readonly roomLogMaxLen: number
  /** Bytes of messages a room log keeps at most (older ones are trimmed); at least maxMessageBytes. @default 16777216 */
  readonly roomLogMaxBytes: number
  /** How long a room log keeps a message, in seconds. @default 86400 */
  readonly messageTtlSec: number
  /** How long a consumer's rooms and cursors live after it was last seen, in seconds. @default 86400 */
  readonly consumerTtlSec: number
  /** Life of a consumer replaced by a new token from the same browser, in seconds. @default 300 */
  readonly replacedConsumerTtlSec: number
  /** Longest room name, in UTF-8 bytes. @default 1024 */
  readonly maxRoomBytes: number
  /** Longest message, in UTF-8 bytes. @default 262144 */
  readonly maxMessageBytes: number

  /** Largest producer RESP frame, in bytes; a larger one closes that connection. @default 1048576 */
  readonly maxFrameBytes: number
  /** Producer requests in flight per connection before the broker stops reading from it. @default 1024 */
  readonly producerMaxPending: number
  /**
   * Bytes of a producer connection's frames in flight (publishes not stored yet), each message
   * counted 1 KiB beside its frame's bytes (its Redis work), before the broker stops reading from
   * it: what one producer can queue ahead of the others in Redis.
   * @default 1048576
   */
  readonly producerMaxPendingBytes: number
  /**
   * Bytes of all producer connections' frames in flight on a node, weighed as for
   * producerMaxPendingBytes; beyond, a connection holding more than its share (this ÷ the
   * connections with work in flight) is not read until its turn, the others are: what all
   * producers together queue ahead of a light one in Redis. @default 4194304
   */
  readonly producerSharedMaxPendingBytes: number
  /** Time a new producer connection has to authenticate, in ms. @default 10000 */
  readonly producerAuthTimeoutMs: number
  /** Producer connections per node at most. @default 10000 */
  readonly maxProducerConnections: number
  /**
   * Largest first frame of a producer connection (its `auth` request), in bytes: a stranger
   * cannot make the broker buffer a maxFrameBytes frame. @default 8192
   */
  readonly maxAuthFrameBytes: number
  /** Producer connections per node that have not authenticated yet, from all addresses. @default 1000 */
  readonly maxUnauthenticatedProducers: number
  /** Producer connections per node that have not authenticated yet, from one client address. @default 20 */
  readonly maxUnauthenticatedProducersPerAddress: number
  /**
   * Bytes of published messages waiting to be stored in Redis (slow, or down and held in the
   * client's offline queue); beyond, producer connections are not read and HTTP publishes get
   * 503 STORE_UNAVAILABLE until half of it is stored. @default 67108864
   */
  readonly publishMaxPendingBytes: number
  /** Distinct rooms one publish may name (TCP frame or HTTP body): each is a Redis stream kept messageTtlSec. @default 1000 */
  readonly maxRoomsPerPublish: number
  /**
   * Rooms one consumer may be in, its own user room included: each is read at every handshake of
   * the consumer and followed by its node. A subscribe past it: CONSUMER_ROOMS_FULL. @default 1000
   */
  readonly maxRoomsPerConsumer: number

  /** Engine.IO pingInterval, in ms. @default 25000 */
  readonly pingIntervalMs: number
  /** Engine.IO pingTimeout, in ms. @default 20000 */
  readonly pingTimeoutMs: number
  /** Time a polling session has to finish its websocket upgrade, in ms. @default 10000 */
  readonly upgradeTimeoutMs: number
  /** Largest Engine.IO HTTP body or websocket message, in bytes (advertised as maxPayload). @default 1000000 */
  readonly maxPayloadBytes: number
  /**
   * Longest query string of a consumer request, in bytes; at most MAX_QUERY_BYTES. @default 2048
   */
  readonly maxQueryBytes: number
  /** Consumer sessions per node at most; further handshakes get 503. @default 100000 */
  readonly maxSessions: number
  /**
   * Consumer sessions one user (the token's userId) may hold per node: its distinct consumers, so
   * a reconnect replacing its own session always passes; further handshakes get 429. 0: no limit.
   * @default 100
   */
  readonly maxSessionsPerUser: number
  /**
   * Consumer handshakes one user (the token's userId) may make per second per node, its reconnects
   * included: each is a Redis script and a takeover, and one token in a loop made 400-580 a second.
   * Further ones get 429. 0: no limit. @default 20
   */
  readonly maxHandshakesPerUserPerSec: number
  /**
   * New consumer sessions (handshakes) one client address may open per second per node; further
   * ones get 429. 0: no limit. Behind a proxy, set trustedProxies, or every client counts as the
   * proxy's address. @default 0
   */
  readonly maxHandshakesPerAddressPerSec: number
  /**
   * Bits of an IPv6 client address the per-address limits count it by (maxHandshakesPerAddressPerSec,
   * maxUnauthenticatedProducersPerAddress, adminMaxConnectionsPerAddress): a site may use any address
   * of its /64 (or wider) prefix, so exact addresses bound nothing. 128: each address apart. @default 64
   */
  readonly perAddressIpv6PrefixBits: number
  /**
   * Addresses (or CIDR ranges) of proxies whose X-Forwarded-For / X-Real-IP names the consumer's
   * address; from anyone else these headers are ignored. @default []
   */
  readonly trustedProxies: readonly string[]
  /** Origins allowed to open sessions from a browser; empty allows any (echoed with credentials). @default [] */
  readonly corsOrigins: readonly string[]
  /** Messages per delivery batch (one JSON-RPC `publish`). @default 50 */
  readonly batchMaxMessages: number
  /** Bytes of messages per delivery batch (a batch always holds at least one message). @default 262144 */
  readonly batchMaxBytes: number
  /** Messages held in memory per consumer; beyond, it reads from the room logs instead. @default 1000 */
  readonly consumerMaxQueue: number
  /** Bytes of messages held in memory per consumer (but always one); beyond, it reads from the room logs instead. @default 4194304 */
  readonly consumerMaxQueueBytes: number
  /**
   * Messages a room keeps in a node's memory for members that fall behind (a burst larger than
   * their queue) or (re)join, who read them there instead of Redis; 0 keeps none. @default 2000
   */
  readonly recentMaxMessages: number
  /** Bytes one room's recent messages may hold (each counted as 5 × its UTF-8 bytes + 1.5 KB: heldBytes). @default 4194304 */
  readonly recentMaxBytesPerRoom: number
  /** Bytes the recent messages of all rooms of a node may hold together (counted the same way). @default 67108864 */
  readonly recentMaxBytes: number
  /** Bytes of messages one room log read returns at most (but always one message). @default 1048576 */
  readonly logReadMaxBytes: number
  /**
   * Rooms one room log read script call reads at most: the reads asked for in one turn (a consumer
   * connecting in many rooms new to the node) go together, a call per this many. @default 256
   */
  readonly logReadMaxRoomsPerCall: number
  /** Bytes buffered towards one consumer before it is closed as too slow. @default 1048576 */
  readonly consumerMaxBackpressureBytes: number
  /**
   * Bytes buffered towards all websocket consumers of a node together (native memory, a copy per
   * socket): past it, a consumer holding at least a sixteenth of consumerMaxBackpressureBytes and
   * the average is closed as too slow on its next send; it resumes from its cursor. 0: no bound.
   * @default 268435456
   */
  readonly consumerMaxBackpressureBytesTotal: number
  /** Bytes one user's consumer sessions on a node may send together (websocket messages, POST bodies) a second on average, maxPayloadBytes at once; the allowance outlives the sessions until it has filled up again, so a reconnect gets no fresh one; past it the session is closed. 0: no limit. @default 262144 */
  readonly consumerMaxInputBytesPerSec: number
  /** Bytes each packet a consumer sends counts against consumerMaxInputBytesPerSec beside its own: a packet costs the node far more than its bytes. @default 64 */
  readonly consumerInputBytesPerPacket: number
  /** Time a consumer has to acknowledge a batch before its session is closed, in ms. @default 60000 */
  readonly ackTimeoutMs: number
  /**
   * What a node that refuses a handshake with 503 (full, draining) or 429 (maxSessionsPerUser) tells clients to wait before
   * they try again, in ms (Retry-After, and `retryAfterMs` in the polling body). @default 5000
   */
  readonly consumerRetryAfterMs: number
  /** Offer permessage-deflate on consumer websockets (uWS's shared compressor): fewer bytes, more CPU. @default false */
  readonly wsCompression: boolean

  /** How often acknowledged cursors are written to Redis, in ms. @default 1000 */
  readonly cursorFlushMs: number
  /**
   * Longest a node taking over a consumer waits for the node that held it (alive by its liveness key) to
   * write its cursors, in ms; then it starts from the cursors in Redis. @default 1000
   */
  readonly takeoverWaitMs: number
  /** A node that stops refreshing its liveness key for this long no longer counts its consumers, in ms. @default 10000 */
  readonly nodeTtlMs: number
  /** How long a node that stopped reporting without a clean stop (a crash) stays listed in /stats and the dashboard, in seconds. @default 86400 */
  readonly deadNodeRetentionSec: number
  /** How often the stats counters are written to Redis, in ms. @default 1000 */
  readonly statsFlushMs: number
  /** Longest a graceful shutdown (SIGTERM) may take, in ms. @default 15000 */
  readonly drainTimeoutMs: number
  /** Consumers are closed spread over this window on shutdown, so they do not all reconnect at once, in ms. @default 2000 */
  readonly drainSpreadMs: number

  /**
   * Receipts a tracked message records at most (consumers listed by `receipt`); further acks are
   * only counted (`moreAcks`). Bounds the Redis memory of a message tracked to a big room. @default 1000
   */
  readonly trackMaxReceipts: number
  /**
   * How long a receipt write that failed for a reason that passes (a Redis Cluster failover) is
   * retried after the ack, in seconds; then that ack is not listed. @default 60
   */
  readonly trackReceiptRetrySec: number
  /**
   * Where tracked messages that nobody acknowledged within their `escalateAfterMs` are POSTed
   * (http or https URL); empty: escalation is off and `track` refuses `escalateAfterMs`. @default ''
   */
  readonly escalationWebhookUrl: string
  /** HMAC-SHA256 secret that signs each webhook request (X-Snapper-Signature); required with the URL. @default '' */
  readonly escalationWebhookSecret: string
  /** Longest a webhook request may take before it counts as failed, in ms. @default 5000 */
  readonly escalationTimeoutMs: number
  /** How long failed webhook requests are retried (with backoff) after the escalation fell due, in seconds. @default 600 */
  readonly escalationRetrySec: number
  /** How often each node looks for escalations that fell due, in ms (their timing is this precise). @default 250 */
  readonly escalationPollMs: number
  /** Webhook requests each node has going at once at most: so many hanging ones make the next due escalations wait. @default 32 */
  readonly escalationMaxInFlight: number

  /** Largest body of an admin HTTP request, in bytes. @default 1048576 */
  readonly adminMaxBodyBytes: number
  /**
   * Bytes of admin request bodies being read or parsed at once, all requests together (a
   * chunked or compressed body counts as adminMaxBodyBytes, what it may grow to); a request whose body
   * does not fit gets 503 BODIES_PENDING, unread. At least adminMaxBodyBytes. A body held so
   * costs about its size in heap while read, three times that once parsed. @default 67108864
   */
  readonly adminMaxPendingBodyBytes: number
  /** Connections the admin app holds at once; more are closed at once. @default 1000 */
  readonly adminMaxConnections: number
  /**
   * Of those, connections one client address (the TCP peer) holds at once; more are answered 503
   * TOO_MANY_CONNECTIONS and closed, so one address cannot take every place, /healthz's and
   * /readyz's too. 0: no limit. @default 100
   */
  readonly adminMaxConnectionsPerAddress: number
  /** Longest an admin request may take to arrive in full (head and body), in ms; then 408. @default 10000 */
  readonly adminRequestTimeoutMs: number
  /**
   * Files each node process keeps for its own work (Redis connections, producers, probes,
   * webhooks) that its consumer gateway cannot take: when the process's open files run out,
   * the gateway stops accepting and these are given back, until twice as many are free
   * again (src/open-files-guard.ts). At most a quarter of the open-files limit. @default 128
   */
  readonly openFilesReserve: number
  /**
   * Demo mode: the admin app serves /demo/ and hands out consumer tokens for random users; `snapper
   * start` then makes a random token secret if none is set and binds 127.0.0.1 unless `host` is
   * set. Never in production. @default false
   */
  readonly demo: boolean
}

export const defaults: Config = {
  host: '0.0.0.0',
  producerPort: 7700,
  gatewayPort: 7701,
  adminPort: 7699,
  redis: { kind: 'standalone', url: 'redis://127.0.0.1:6379' },
  localRedisMaxMemoryBytes: Math.floor(totalmem() / 4),
  redisPrefix: 'SNP',
  redisReplicaAcks: 0,
  redisPingIntervalMs: 5000,
  redisRequestTimeoutMs: 5000,
  tokenSecrets: [],
  tokenAlgorithm: 'HS256',
  operatorSecrets: [],
  tokenClockSkewSec: 0,
  tokenMaxLifetimeSec: 0,
  workers: availableParallelism(),
  logLevel: 'info',
  logMaxRefusalsPerSec: 10,
  logMaxFailuresPerSec: 10,

  roomLogMaxLen: 10_000,
  roomLogMaxBytes: 16 << 20,
  publishMaxPendingBytes: 64 << 20,
  messageTtlSec: 24 * 3600,
  consumerTtlSec: 24 * 3600,
  replacedConsumerTtlSec: 300,
  maxRoomBytes: 1024,
  maxMessageBytes: 256 * 1024,

  maxFrameBytes: 1 << 20,
  producerMaxPending: 1024,
  producerMaxPendingBytes: 1 << 20,
  producerSharedMaxPendingBytes: 4 << 20,
  producerAuthTimeoutMs: 10_000,
  maxProducerConnections: 10_000,
  maxAuthFrameBytes: 8192,
  maxUnauthenticatedProducers: 1000,
  maxUnauthenticatedProducersPerAddress: 20,
  maxRoomsPerPublish: 1000,
  maxRoomsPerConsumer: 1000,

  pingIntervalMs: 25_000,
  pingTimeoutMs: 20_000,
  upgradeTimeoutMs: 10_000,
  maxPayloadBytes: 1_000_000,
  maxQueryBytes: 2048,
  maxSessions: 100_000,
  maxSessionsPerUser: 100,
  maxHandshakesPerUserPerSec: 20,
  maxHandshakesPerAddressPerSec: 0,
  perAddressIpv6PrefixBits: 64,
  trustedProxies: [],
  corsOrigins: [],
  batchMaxMessages: 50,
  batchMaxBytes: 256 * 1024,
  consumerMaxQueue: 1000,
  consumerMaxQueueBytes: 4 << 20,
  recentMaxMessages: 2000,
  recentMaxBytesPerRoom: 4 << 20,
  recentMaxBytes: 64 << 20,
  logReadMaxBytes: 1 << 20,
  logReadMaxRoomsPerCall: 256,
  consumerMaxBackpressureBytes: 1 << 20,
  consumerMaxBackpressureBytesTotal: 256 << 20,
  consumerMaxInputBytesPerSec: 256 * 1024,
  consumerInputBytesPerPacket: 64,
  ackTimeoutMs: 60_000,
  consumerRetryAfterMs: 5000,
  wsCompression: false,

  cursorFlushMs: 1000,
  takeoverWaitMs: 1000,
  nodeTtlMs: 10_000,
  deadNodeRetentionSec: 86_400,
  statsFlushMs: 1000,
  drainTimeoutMs: 15_000,
  drainSpreadMs: 2000,

  trackMaxReceipts: 1000,
  trackReceiptRetrySec: 60,
  escalationWebhookUrl: '',
  escalationWebhookSecret: '',
  escalationTimeoutMs: 5000,
  escalationRetrySec: 600,
  escalationPollMs: 250,
  escalationMaxInFlight: 32,

  adminMaxBodyBytes: 1 << 20,
  adminMaxPendingBodyBytes: 64 << 20,
  adminMaxConnections: 1000,
  adminMaxConnectionsPerAddress: 100,
  adminRequestTimeoutMs: 10_000,
  openFilesReserve: 128,
  demo: false,
}
