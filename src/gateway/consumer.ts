import { hash } from 'node:crypto'
import type { Tokens } from '../auth/token.js'
import { consumerIdOf, userIdOf } from '../auth/token.js'
import type { Batch } from '../broker/batch.js'
import type { BrokerNode, ConsumerSink } from '../broker/node.js'
import type { Outbox } from '../broker/outbox.js'
import { classifyMessage, isShallow, MAX_PARAMS_DEPTH } from '../jsonrpc.js'
import { truncate, type Logger } from '../log.js'
import type { BoundedLog } from '../bounded-log.js'
import {
  decodeFromClient,
  encodeObject,
  formatOf,
  jsonFrame,
  legacyFrame,
  msgpackFrame,
  type DeliveryFormat,
} from './delivery.js'
import {
  type Abandoned,
  type Authorization,
  type EngineHandlers,
  type Handshake,
  type Session,
  TryAgainLater,
} from './engineio/server.js'
import type { UserSessions } from './user-sessions.js'
import type { RatePerSecond } from '../rate.js'

/**
 * A consumer's side of one Engine.IO session, set once at the handshake: the
 * node delivers through it (it is the outbox's sink), the engine calls it
 * back. A batch sent before the session exists (the node is still taking the
 * consumer over) is dropped: node.attach() sends the batch in flight again when it opens.
 */
export class ConsumerLink implements ConsumerSink {
  outbox: Outbox | undefined
  #session: Session<ConsumerLink> | undefined
  #closeReason: string | undefined

  constructor(
    readonly consumerId: string,
    readonly userId: string,
    /** The handshake's token as tokenDigest() gives it: every later request of the session must carry that token too. */
    readonly tokenDigest: string,
    /** What the handshake's `codec` asked for (see delivery.ts). */
    readonly format: DeliveryFormat = 'legacy',
    /** The consumer id this browser used before (the `snapper.ws` cookie), to be retired early. */
    readonly replaces?: string,
  ) {}

  get session(): Session<ConsumerLink> | undefined {
    return this.#session
  }

  /** The session opened: close it if that was asked meanwhile. */
  attach(session: Session<ConsumerLink>): void {
    this.#session = session
    if (this.#closeReason !== undefined) session.close(this.#closeReason)
  }

  send(batch: Batch): void {
    const session = this.#session
    if (session === undefined) return
    if (this.format === 'legacy') session.sendEncoded(legacyFrame(batch))
    else if (this.format === 'json') session.sendEncoded(jsonFrame(batch))
    else session.sendBinary(msgpackFrame(batch))
  }

  gap(room: string, missed: number | null): void {
    this.sendObject({ jsonrpc: '2.0', method: 'gap', params: [{ room, missed }] })
  }

  /** A JSON-RPC object (a reply, a notice) in the session's format. */
  sendObject(value: object): void {
    const session = this.#session
    if (session === undefined) return
    const encoded = encodeObject(this.format, value)
    if (typeof encoded === 'string') session.send(encoded)
    else session.sendBinary(encoded)
  }

  /**
   * Closes the session. `retryAfterMs`: a codec session is first told, with
   * the `reconnect` notice, when to come back (0: at once, elsewhere).
   */
  close(reason: string, retryAfterMs?: number): void {
    if (retryAfterMs !== undefined && this.format !== 'legacy')
      this.sendObject({ jsonrpc: '2.0', method: 'reconnect', params: [{ retryAfterMs }] })
    if (this.#session) this.#session.close(reason)
    else this.#closeReason = reason
  }
}

/** The `snapper.ws` cookie names the consumer id this browser used before. */
const PREVIOUS_ID = /(?:^|;\s*)snapper\.ws=([0-9a-zA-Z.~_-]{24,})/

/**
 * The consumer this browser used before, to be retired early: only one of the
 * same user. Ids can be guessed (userId + exp), so a cookie naming another
 * user's consumer is ignored, or anyone could cut a stranger's consumer short.
 */
function previousConsumer(cookie: string | undefined, userId: string): string | undefined {
  const previous = PREVIOUS_ID.exec(cookie ?? '')?.[1]
  return previous !== undefined && userIdOf(previous) === userId ? previous : undefined
}

/**
 * Past maxSessionsPerUser: a 429, as for a client address past its handshake
 * rate (the engine adds consumerRetryAfterMs), since the client itself is
 * over its share; not a 403, after which the SDK would stop for good.
 */
export const TOO_MANY_USER_SESSIONS = {
  status: 429,
  code: 3,
  message: 'Too many sessions for this user',
} as const

/** Past maxHandshakesPerUserPerSec: a 429 too (a reconnect loop, or a fleet sharing one userId). */
export const TOO_MANY_USER_HANDSHAKES = {
  status: 429,
  code: 3,
  message: 'Too many handshakes for this user',
} as const

/**
 * Redis cannot serve the handshake now: down, not answering the watchdog's
 * PING, or not within redisRequestTimeoutMs (the engine's prepareTimeout).
 */
export const STORAGE_UNAVAILABLE = { status: 503, code: 3, message: 'Storage unavailable, retry' } as const

const ACK_HEAD = '{"jsonrpc":"2.0","id":"'
const ACK_TAIL = '","result":"OK"}'

/**
 * The id of an ack exactly as snapper-consumer writes it (jsonrpc-lite's key
 * order, a string id without escapes), read without JSON.parse: one ack per
 * batch per consumer is most of what consumers send. Anything else, even an
 * equivalent ack spelled differently, returns undefined and goes the full way.
 */
export function plainAckId(text: string): string | undefined {
  if (text.length > 256 || !text.startsWith(ACK_HEAD) || !text.endsWith(ACK_TAIL)) return undefined
  const id = text.slice(ACK_HEAD.length, text.length - ACK_TAIL.length)
  return id !== '' && !id.includes('"') && !id.includes('\\') ? id : undefined
}

/**
 * The `invalid` notification the original sent back for anything it did not
 * expect, echoing it. A value nested too deep to serialise (JSON.stringify
 * overflows the stack) is not echoed: the notice says so instead.
 */
function invalidNotice(payload: unknown, kind: string): object {
  const echoable = typeof payload !== 'object' || payload === null || isShallow(payload, MAX_PARAMS_DEPTH + 1)
  if (!echoable) payload = { message: 'Nested too deeply', code: -32600 }
  return { jsonrpc: '2.0', method: 'invalid', params: [{ payload, type: kind }] }
}

/**
 * What a session keeps of its token: the SHA-256, not the token itself, which
 * (a slice of the handshake's query) would hold the whole query string for
 * the session's life, and a JWT with claims can be long. Its 32 bytes as 32
 * latin1 characters, a 48-byte string (base64url took 64: docs/performance.md,
 * section 1, item 23); it is compared, never shown.
 */
const tokenDigest = (token: string): string => hash('sha256', token, 'binary') // 'binary' is latin1

export interface ConsumerCounters {
  handshakes: number
  refused: number
  /** Handshakes refused with 429: their user had maxSessionsPerUser sessions on this node. */
  userLimited: number
  /** Handshakes refused with 429: their user had made maxHandshakesPerUserPerSec this second on this node. */
  userRateLimited: number
  requests: number
  acks: number
  invalid: number
}

export interface ConsumerHandlersDeps {
  /** Takes consumers over, attaches their sessions, acks and releases their outboxes. */
  readonly node: BrokerNode
  /** Verifies each handshake's consumer token. */
  readonly tokens: Tokens
  readonly log: Logger
  /** What the handlers count: handshakes, refusals, requests, acks, invalid messages. */
  readonly counters: ConsumerCounters
  /** Where refusals a client can cause at will are logged, at a bounded rate (never the token itself). */
  readonly refusals: BoundedLog
  /** Holds each accepted handshake's place (maxSessionsPerUser) until abandon(), close() or its replacement. */
  readonly userSessions: UserSessions<ConsumerLink>
  /** Counts each user's handshakes in the current second (maxHandshakesPerUserPerSec). */
  readonly userHandshakes: RatePerSecond
}

/**
 * The Engine.IO handlers of the consumer gateway: token → consumer id, the
 * session ↔ node wiring, and the consumer's JSON-RPC (acks of delivery
 * batches, echo of requests, `invalid` for the rest). Refusals a client can
 * cause at will (a bad token, an unknown codec, a user past
 * maxSessionsPerUser or maxHandshakesPerUserPerSec) go to `refusals`.
 */
export function createConsumerHandlers(deps: ConsumerHandlersDeps): EngineHandlers<ConsumerLink> {
  const { node, tokens, log, counters, refusals, userSessions, userHandshakes } = deps
  return {
    authorize(handshake: Handshake): Authorization<ConsumerLink> {
      counters.handshakes++
      const verified = tokens.verifyConsumer(handshake.query.get('token'))
      if (!verified.ok) {
        counters.refused++
        refusals.info(
          log,
          { reason: verified.reason, remoteAddress: handshake.remoteAddress },
          'consumer handshake refused',
        )
        return { ok: false, status: 403, code: 4, message: verified.reason }
      }
      const format = formatOf(handshake.query.get('codec'))
      if (format === undefined) {
        counters.refused++
        refusals.info(
          log,
          { codec: truncate(handshake.query.get('codec') ?? '', 32), remoteAddress: handshake.remoteAddress },
          'consumer handshake refused: unknown codec',
        )
        return { ok: false, status: 400, code: 3, message: 'Unknown codec: use json or msgpack' }
      }
      const { claims } = verified
      // After the token check, so that nobody can spend another user's allowance; before any Redis work.
      if (!userHandshakes.admits(claims.userId)) {
        counters.userRateLimited++
        refusals.info(
          log,
          { userId: claims.userId, remoteAddress: handshake.remoteAddress },
          'consumer handshake refused: too many handshakes for this user',
        )
        return { ok: false, ...TOO_MANY_USER_HANDSHAKES }
      }
      const consumerId = consumerIdOf(claims)
      if (!node.canConnect(consumerId)) {
        counters.refused++
        return { ok: false, ...STORAGE_UNAVAILABLE }
      }
      const previous = previousConsumer(handshake.headers.cookie, claims.userId)
      const digest = tokenDigest(handshake.query.get('token') ?? '')
      const link = new ConsumerLink(consumerId, claims.userId, digest, format, previous)
      // Last, so that an accepted link holds its place until abandon() or close() (or its replacement).
      if (!userSessions.take(link)) {
        counters.userLimited++
        refusals.info(
          log,
          { userId: claims.userId, remoteAddress: handshake.remoteAddress },
          'consumer handshake refused: too many sessions for this user',
        )
        return { ok: false, ...TOO_MANY_USER_SESSIONS }
      }
      return { ok: true, id: consumerId, data: link }
    },

    // The node takes the consumer over before its session opens: the open packet says it is ready.
    // A client gone before the takeover kicks no live session of the consumer elsewhere.
    async prepare(link: ConsumerLink, abandoned: Abandoned): Promise<void> {
      link.outbox = await node.connect(link.consumerId, link.userId, link, link.replaces, abandoned)
      if (!link.outbox) throw new TryAgainLater(STORAGE_UNAVAILABLE, 'Redis refused the consumer take')
    },

    abandon(link: ConsumerLink): void {
      // The client went away before its session opened, or the engine refused it after all.
      userSessions.release(link)
      if (link.outbox) void node.disconnect(link.outbox, link)
    },

    // The engine keeps the session of a consumer that opens last, whatever order the handshakes
    // came in: so this one takes the outbox now, not when it was authorized.
    open(session: Session<ConsumerLink>, replaced: Session<ConsumerLink> | undefined): void {
      const link = session.data
      link.attach(session)
      if (!link.outbox || !node.attach(link.outbox, link)) session.close('consumer released meanwhile')
      // The engine calls no close() for a replaced session: release its outbox here, unless this session took it.
      const old = replaced?.data
      if (old) userSessions.release(old)
      if (old?.outbox) void node.disconnect(old.outbox, old)
    },

    // The sid is derived from the token's userId and exp, so it can be guessed: both
    // clients send the token on every request, and only the handshake's token is let in.
    admits: (session, query) => tokenDigest(query.get('token') ?? '') === session.data.tokenDigest,

    // One budget per user on this node: its tokens are as many as the app signs, and each reconnect
    // would otherwise bring a fresh one (README, Limits and bad input).
    inputKey: link => link.userId,

    message(session: Session<ConsumerLink>, data: string | Buffer): void {
      const link = session.data
      const ackId = typeof data === 'string' ? plainAckId(data) : undefined
      if (ackId !== undefined && link.outbox && node.ack(link.outbox, ackId)) {
        counters.acks++
        return
      }
      let value: unknown
      try {
        value = decodeFromClient(link.format, data)
      } catch {
        counters.invalid++
        link.sendObject(invalidNotice({ message: 'Parse error', code: -32700 }, 'invalid'))
        return
      }
      const message = classifyMessage(value)
      if (message.kind === 'request') {
        // The original echoed every consumer request; clients use it as a ping.
        counters.requests++
        const reply = { jsonrpc: '2.0', id: message.id, result: message.params ?? null }
        link.sendObject(reply)
        return
      }
      const outbox = link.outbox
      if (message.kind === 'success' && outbox && node.ack(outbox, message.id)) {
        counters.acks++
        return
      }
      if (message.kind === 'error' && message.id !== null && outbox && node.nack(outbox, message.id)) return
      counters.invalid++
      link.sendObject(invalidNotice(value, message.kind))
    },

    close(session: Session<ConsumerLink>, reason: string): void {
      const link = session.data
      log.debug({ consumerId: link.consumerId, reason }, 'consumer session closed')
      userSessions.release(link)
      if (link.outbox) void node.disconnect(link.outbox, link)
    },
  }
}
