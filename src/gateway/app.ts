import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import { refusalCode, repeatedToken, type Tokens } from '../auth/token.js'
import type { BrokerCore } from '../broker/core.js'
import type { BrokerNode } from '../broker/node.js'
import type { Config } from '../config/defaults.js'
import { httpError } from '../errors.js'
import { guard } from '../guard.js'
import type { Logger } from '../log.js'
import { BoundedLog } from '../bounded-log.js'
import {
  createConsumerHandlers,
  STORAGE_UNAVAILABLE,
  type ConsumerCounters,
  type ConsumerLink,
} from './consumer.js'
import { answerFailedRequest, endJson, writeRetryAfter } from './engineio/http.js'
import { attachEngine, loadUws, type Engine } from './engineio/server.js'
import type { Uws } from './engineio/uws.js'
import { statsBody } from './stats.js'
import { UserSessions } from './user-sessions.js'
import { RatePerSecond } from '../rate.js'

export type GatewayConfig = Pick<
  Config,
  | 'pingIntervalMs'
  | 'pingTimeoutMs'
  | 'upgradeTimeoutMs'
  | 'maxPayloadBytes'
  | 'maxQueryBytes'
  | 'maxSessions'
  | 'maxSessionsPerUser'
  | 'maxHandshakesPerUserPerSec'
  | 'consumerMaxBackpressureBytes'
  | 'consumerMaxBackpressureBytesTotal'
  | 'consumerMaxInputBytesPerSec'
  | 'consumerInputBytesPerPacket'
  | 'corsOrigins'
  | 'maxHandshakesPerAddressPerSec'
  | 'perAddressIpv6PrefixBits'
  | 'trustedProxies'
  | 'nodeTtlMs'
  | 'consumerRetryAfterMs'
  | 'redisRequestTimeoutMs'
  | 'wsCompression'
  | 'logMaxRefusalsPerSec'
  | 'logMaxFailuresPerSec'
>

export interface Gateway {
  readonly engine: Engine<ConsumerLink>
  readonly counters: ConsumerCounters
  /** What the gateway holds per session, user and address, by structure (a leak check's reading). */
  footprint(): Record<string, number>
  /**
   * Resolves with the port actually bound (0 picks a free one). The port must
   * be free, unless `takesOver`: a rolling restart's new worker shares it
   * with the worker it replaces until that one stops listening.
   */
  listen(port: number, host: string, options?: { takesOver?: boolean }): Promise<number>
  /**
   * Stops accepting connections, and handshakes over connections already open (503): live
   * sessions stay until the node closes them.
   */
  stopListening(): void
  /**
   * Closes the listening socket for a while, sessions and handshakes untouched: new
   * connections are refused by the kernel (the node's open files ran out, src/open-files-guard.ts).
   */
  pauseAccepting(): void
  /** Listens again on the port it had, unless stopListening() came meanwhile; rejects if it cannot. */
  resumeAccepting(): Promise<void>
  /** Whether the port takes connections now. */
  readonly isAccepting: boolean
  /** Closes every session and the listener. */
  close(): void
}

/**
 * The consumer gateway of one node, on uWebSockets.js: Engine.IO at
 * `/websocket/`, the original's `/stats`, and a small JSON answer elsewhere.
 */
export function createGateway(deps: {
  config: GatewayConfig
  core: BrokerCore
  node: BrokerNode
  tokens: Tokens
  logger: Logger
}): Gateway {
  const { config, core, node, tokens, logger } = deps
  const uws = loadUws()
  const app: TemplatedApp = uws.App()
  const counters: ConsumerCounters = {
    handshakes: 0,
    refused: 0,
    userLimited: 0,
    userRateLimited: 0,
    requests: 0,
    acks: 0,
    invalid: 0,
  }
  const userSessions = new UserSessions<ConsumerLink>(config.maxSessionsPerUser)
  const userHandshakes = new RatePerSecond(config.maxHandshakesPerUserPerSec)
  const engine = attachEngine(
    app,
    {
      path: '/websocket/',
      pingIntervalMs: config.pingIntervalMs,
      pingTimeoutMs: config.pingTimeoutMs,
      upgradeTimeoutMs: config.upgradeTimeoutMs,
      maxPayloadBytes: config.maxPayloadBytes,
      maxQueryBytes: config.maxQueryBytes,
      maxSessions: config.maxSessions,
      maxBackpressureBytes: config.consumerMaxBackpressureBytes,
      maxBackpressureBytesTotal: config.consumerMaxBackpressureBytesTotal,
      logMaxRefusalsPerSec: config.logMaxRefusalsPerSec,
      maxInputBytesPerSec: config.consumerMaxInputBytesPerSec,
      inputBytesPerPacket: config.consumerInputBytesPerPacket,
      cookieName: 'snapper.ws',
      corsOrigins: config.corsOrigins,
      retryAfterMs: config.consumerRetryAfterMs,
      // Taking the consumer over waits for Redis: one that hangs before the watchdog sees it must not hold the client.
      prepareTimeout: { ms: config.redisRequestTimeoutMs, refusal: STORAGE_UNAVAILABLE },
      compression: config.wsCompression,
      maxHandshakesPerAddressPerSec: config.maxHandshakesPerAddressPerSec,
      perAddressIpv6PrefixBits: config.perAddressIpv6PrefixBits,
      trustedProxies: config.trustedProxies,
    },
    createConsumerHandlers({
      node,
      tokens,
      log: logger,
      counters,
      refusals: new BoundedLog(logger, config.logMaxRefusalsPerSec),
      userSessions,
      userHandshakes,
    }),
    logger,
  )

  // One outage fails every /stats request: said at most logMaxFailuresPerSec times a second.
  const failures = new BoundedLog(logger, config.logMaxFailuresPerSec)
  const serveStats = (res: HttpResponse, req: HttpRequest): void => {
    // ?token= as the original read it, or a Bearer header as the admin /stats takes it (no token in logs).
    const given = new URLSearchParams(req.getQuery()).getAll('token')
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.getHeader('authorization'))?.[1]
    const verified =
      given.length > 1 ? repeatedToken(given.length) : tokens.verifyOperator(given[0] || bearer)
    if (!verified.ok) {
      // 400 for a token of another role, 401 for a bad or missing one, as the original answered.
      const { body } = httpError(refusalCode(verified), verified.reason)
      writeJson(res, verified.isWrongRole ? '400 Bad Request' : '401 Unauthorized', body)
      return
    }
    let isAborted = false
    let isAnswered = false
    res.onAborted(() => {
      isAborted = true
    })
    const answer = (status: string, body: unknown, retryAfterMs?: number): void => {
      if (isAnswered) return
      isAnswered = true
      clearTimeout(late)
      if (!isAborted)
        res.cork(() => {
          res.writeStatus(status)
          writeRetryAfter(res, retryAfterMs)
          endJson(res, body)
        })
    }
    const unavailable = (err: unknown): void => {
      if (isAnswered) return // past its deadline already: said once
      failures.warn(logger, { err }, 'stats unavailable')
      // Retry-After: 1, as the admin app's 503s.
      answer('503 Service Unavailable', httpError('STORE_UNAVAILABLE').body, 1000)
    }
    // As the admin /stats (redisDeadline): a Redis that hangs fails no command until the watchdog finds it.
    const late = setTimeout(
      guard(logger, 'gateway /stats', () =>
        unavailable(
          new Error(`Redis did not answer within ${config.redisRequestTimeoutMs} ms (redisRequestTimeoutMs)`),
        ),
      ),
      config.redisRequestTimeoutMs,
    )
    statsBody(core, node, config.nodeTtlMs).then(
      guard(
        logger,
        'gateway /stats',
        (body: unknown) => answer('200 OK', body),
        () => answer(...INTERNAL),
      ),
      guard(logger, 'gateway /stats', unavailable),
    )
  }
  // Guarded: a bug answers 500 (uWS would abort the process on a handler that throws unanswered).
  app.get(
    '/stats',
    guard(logger, 'gateway /stats', serveStats, res => failRequest(res, logger)),
  )
  app.any(
    '/*',
    guard(
      logger,
      'gateway request',
      (res: HttpResponse, req: HttpRequest) =>
        writeJson(res, '404 Not Found', httpError('METHOD_NOT_FOUND').body, req.getMethod() === 'head'),
      res => failRequest(res, logger),
    ),
  )

  let listenSocket: us_listen_socket | undefined
  let bound: { host: string; port: number } | undefined
  const closeListenSocket = (): void => {
    if (listenSocket) uws.us_listen_socket_close(listenSocket)
    listenSocket = undefined
  }
  return {
    engine,
    counters,
    footprint: () => ({
      ...engine.footprint(),
      users: userSessions.size,
      userHandshakeRateUsers: userHandshakes.size,
    }),
    async listen(port, host, { takesOver = false } = {}) {
      // uWS binds with SO_REUSEPORT, so that a rolling restart's new worker can share its port
      // with the old one; but then a second broker on this host could share it too, and the
      // kernel would split consumers between the two. So the port is first bound without it:
      // that fails if anyone listens there.
      let free = port
      if (!takesOver) {
        const probe = await listenOnce(uws, app, host, port, LISTEN_EXCLUSIVE_PORT)
        uws.us_listen_socket_close(probe.socket)
        free = probe.port
      }
      const listening = await listenOnce(uws, app, host, free, LISTEN_DEFAULT)
      listenSocket = listening.socket
      bound = { host, port: listening.port }
      return listening.port
    },
    stopListening() {
      closeListenSocket()
      bound = undefined
      engine.stopAccepting()
    },
    pauseAccepting: closeListenSocket,
    async resumeAccepting() {
      if (bound === undefined || listenSocket !== undefined) return
      // SO_REUSEPORT as at start: the port is this node's (and its siblings', with workers).
      const listening = await listenOnce(uws, app, bound.host, bound.port, LISTEN_DEFAULT)
      if (bound === undefined || listenSocket !== undefined) uws.us_listen_socket_close(listening.socket)
      else listenSocket = listening.socket
    },
    get isAccepting() {
      return listenSocket !== undefined
    },
    close() {
      this.stopListening()
      engine.close()
    },
  }
}

/** uWS ListenOptions, as numbers: its typings have them only for a port without a host. */
const LISTEN_DEFAULT = 0
const LISTEN_EXCLUSIVE_PORT = 1

function listenOnce(
  uws: Uws,
  app: TemplatedApp,
  host: string,
  port: number,
  options: number,
): Promise<{ socket: us_listen_socket; port: number }> {
  const listen = app.listen as unknown as (
    host: string,
    port: number,
    options: number,
    done: (socket: us_listen_socket | false) => void,
  ) => TemplatedApp
  return new Promise((resolve, reject) => {
    listen.call(app, host, port, options, socket => {
      if (!socket) return reject(new Error(`consumer gateway cannot listen on ${host}:${port}`))
      resolve({ socket, port: uws.us_socket_local_port(socket as never) })
    })
  })
}

const INTERNAL: [string, unknown] = ['500 Internal Server Error', httpError('INTERNAL').body]

/** After a handler threw: 500, unless the request was answered or aborted already. */
function failRequest(res: HttpResponse, logger: Logger): void {
  answerFailedRequest(logger, () => writeJson(res, ...INTERNAL))
}

/** A JSON answer; to a HEAD request its headers only (endJson). */
function writeJson(res: HttpResponse, status: string, body: unknown, isHead = false): void {
  endJson(res.writeStatus(status), body, isHead)
}
