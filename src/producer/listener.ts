/**
 * The producer listener: a `node:net` server speaking what
 * snapper-producer@2.1.1 speaks (RESP bulk strings carrying JSON-RPC 2.0,
 * JWS auth first). It only wires sockets to ProducerConnections and keeps
 * the counters; `cli/` decides where it listens.
 */
import { createServer, type Server, type Socket } from 'node:net'
import type { Tokens } from '../auth/token.js'
import type { ProducerApi } from '../broker/api.js'
import type { Config } from '../config/defaults.js'
import type { ErrorCode } from '../errors.js'
import { guard } from '../guard.js'
import type { Logger } from '../log.js'
import { ProducerConnection } from './connection.js'
import { createCounters } from './counters.js'
import { createMethods } from './methods.js'

export type ProducerListenerConfig = Pick<
  Config,
  | 'maxFrameBytes'
  | 'producerMaxPending'
  | 'producerAuthTimeoutMs'
  | 'drainTimeoutMs'
  | 'maxProducerConnections'
  | 'maxRoomBytes'
  | 'maxMessageBytes'
>

/** A snapshot of the listener's counters, for /metrics and tests. */
export interface ProducerStats {
  /** Connections open now. */
  readonly connections: number
  /** Connections accepted since start. */
  readonly accepted: number
  /** Connections refused because maxProducerConnections were open. */
  readonly refused: number
  /** Frames decoded. */
  readonly frames: number
  /** Notifications ignored (unknown method, publish without params). */
  readonly ignored: number
  /** Requests and publishes in flight, all connections. */
  readonly pending: number
  /** Connections not reading now: backpressure, or a subscribe/unsubscribe served alone. */
  readonly paused: number
  /** Times a connection stopped reading (same reasons). */
  readonly pauses: number
  /** Bytes held for producers: unread input, queued replies, socket write buffers. */
  readonly bufferedBytes: number
  /** Errors answered or logged, by code. */
  readonly errors: Readonly<Partial<Record<ErrorCode, number>>>
}

export interface ProducerListener {
  /** Starts accepting; resolves with the port actually bound (port 0 picks a free one). */
  listen(port: number, host?: string): Promise<number>
  /**
   * Stops accepting; every connection serves and answers what it has already
   * received (publishes are stored in Redis), then ends. Resolves when all
   * sockets are closed.
   */
  close(): Promise<void>
  /** Connections open now. */
  readonly connections: number
  readonly stats: ProducerStats
}

export function createProducerListener(deps: {
  config: ProducerListenerConfig
  tokens: Tokens
  api: ProducerApi
  logger: Logger
}): ProducerListener {
  const { config, tokens, logger } = deps
  const log = logger.child({ module: 'producer' })
  const methods = createMethods(deps.api, config)
  const counters = createCounters()
  const connections = new Set<ProducerConnection>()
  let accepted = 0
  let refused = 0

  const accept = (socket: Socket): void => {
    if (connections.size >= config.maxProducerConnections) {
      refused++
      log.warn(
        { limit: config.maxProducerConnections, remote: socket.remoteAddress },
        'producer connection refused: too many',
      )
      socket.on('error', () => {}) // destroyed right away: a reset from the peer is expected and irrelevant
      socket.destroy()
      return
    }
    accepted++
    const connection = new ProducerConnection(socket, {
      options: config,
      tokens,
      methods,
      counters,
      logger: log,
    })
    connections.add(connection)
    void connection.closed.then(() => connections.delete(connection))
  }

  // allowHalfOpen: a producer's FIN must not cut the answers to what it sent before it.
  const server: Server = createServer(
    { allowHalfOpen: true, pauseOnConnect: false },
    guard(log, 'producer accept', accept, socket => socket.destroy()),
  )
  server.on('error', (err: Error) => log.error({ err }, 'producer listener error'))

  return {
    listen(port, host = '0.0.0.0') {
      return new Promise<number>((resolve, reject) => {
        const fail = (err: Error): void => reject(err)
        server.once('error', fail)
        server.listen(port, host, () => {
          server.off('error', fail)
          const address = server.address()
          const bound = typeof address === 'object' && address !== null ? address.port : port
          log.info({ port: bound, host }, 'producer listener started')
          resolve(bound)
        })
      })
    },

    async close() {
      const stopped = server.listening
        ? new Promise<void>(resolve => server.close(() => resolve()))
        : Promise.resolve()
      await Promise.all([...connections].map(connection => connection.drain()))
      await stopped
      log.info('producer listener closed')
    },

    get connections() {
      return connections.size
    },

    get stats(): ProducerStats {
      let bufferedBytes = 0
      for (const connection of connections) bufferedBytes += connection.bufferedBytes
      return {
        connections: connections.size,
        accepted,
        refused,
        frames: counters.frames,
        ignored: counters.ignored,
        pending: counters.pending,
        paused: counters.paused,
        pauses: counters.pauses,
        bufferedBytes,
        errors: { ...counters.errors },
      }
    },
  }
}
