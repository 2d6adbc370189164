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
import { UnauthenticatedProducers } from './admission.js'
import { ProducerConnection } from './connection.js'
import { countError, createCounters } from './counters.js'
import { encodeError, rpcError } from '../jsonrpc.js'
import { BoundedLog } from '../bounded-log.js'
import { encodeBulk } from './resp.js'
import { createMethods } from './methods.js'
import { ProducerShares } from './shares.js'

export type ProducerListenerConfig = Pick<
  Config,
  | 'maxFrameBytes'
  | 'producerMaxPending'
  | 'producerMaxPendingBytes'
  | 'producerSharedMaxPendingBytes'
  | 'producerAuthTimeoutMs'
  | 'drainTimeoutMs'
  | 'maxProducerConnections'
  | 'maxAuthFrameBytes'
  | 'maxUnauthenticatedProducers'
  | 'maxUnauthenticatedProducersPerAddress'
  | 'perAddressIpv6PrefixBits'
  | 'maxRoomBytes'
  | 'maxMessageBytes'
  | 'maxRoomsPerPublish'
  | 'logMaxRefusalsPerSec'
>

/** A snapshot of the listener's counters, for /metrics and tests. */
export interface ProducerStats {
  /** Connections open now. */
  readonly connections: number
  /** Connections accepted since start. */
  readonly accepted: number
  /** Connections not authenticated yet. */
  readonly unauthenticated: number
  /** Connections refused: maxProducerConnections open, or too many not authenticated yet (in all or from one address). */
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
  /** What the listener holds per connection, producer id and address, by structure (a leak check's reading). */
  footprint(): Record<string, number>
}

export function createProducerListener(deps: {
  config: ProducerListenerConfig
  tokens: Tokens
  api: ProducerApi
  logger: Logger
  /** Whether the process has files to spare for a new connection (src/open-files-guard.ts); else it is closed at once. */
  admitsConnection?: () => boolean
}): ProducerListener {
  const { config, tokens, logger } = deps
  const log = logger.child({ module: 'producer' })
  const methods = createMethods(deps.api, config)
  const counters = createCounters()
  const connections = new Set<ProducerConnection>()
  const shares = new ProducerShares(config.producerSharedMaxPendingBytes)
  const unauthenticated = new UnauthenticatedProducers(config)
  const refusals = new BoundedLog(log, config.logMaxRefusalsPerSec)
  let accepted = 0
  let refused = 0

  const accept = (socket: Socket): void => {
    const address = socket.remoteAddress ?? ''
    if (deps.admitsConnection?.() === false) {
      refused++
      refusals.warn(log, { remote: address }, 'producer connection refused: open files exhausted')
      socket.destroy() // no answer: the file it holds is what the node is short of
      return
    }
    const place =
      connections.size >= config.maxProducerConnections
        ? { full: 'maxProducerConnections' }
        : unauthenticated.admit(address)
    if ('full' in place) {
      refused++
      countError(counters, 'TOO_MANY_CONNECTIONS')
      refusals.warn(log, { limit: place.full, remote: address }, 'producer connection refused: too many')
      return refuseConnection(socket)
    }
    accepted++
    const connection = new ProducerConnection(socket, {
      options: config,
      backlog: deps.api.backlog,
      shares,
      tokens,
      methods,
      counters,
      logger: log,
      refusals,
      onAuthenticationEnd: () => unauthenticated.release(place.group),
    })
    connections.add(connection)
    void connection.closed.then(() => connections.delete(connection))
  }

  deps.api.backlog.onRoom(
    guard(log, 'producer resume', () => {
      for (const connection of connections) connection.resume()
    }),
  )

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

    footprint: () => ({
      producerConnections: connections.size,
      producerUnauthenticated: unauthenticated.total,
      producerUnauthenticatedAddresses: unauthenticated.addresses,
      producerGroups: shares.producers,
      producerSharesWaiting: shares.waiting,
    }),

    get stats(): ProducerStats {
      let bufferedBytes = 0
      for (const connection of connections) bufferedBytes += connection.bufferedBytes
      return {
        connections: connections.size,
        accepted,
        unauthenticated: unauthenticated.total,
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

const TOO_MANY_CONNECTIONS = encodeBulk(encodeError(null, rpcError('TOO_MANY_CONNECTIONS')))
/** How long a refused client has to close its side after our answer, in ms. */
const REFUSAL_GRACE_MS = 1000

/**
 * Answers TOO_MANY_CONNECTIONS (id null: snapper-producer reconnects later)
 * and ends the connection. What the client sends meanwhile is read and
 * dropped: closing with unread input would reset the connection, and the
 * reset could destroy the answer.
 */
function refuseConnection(socket: Socket): void {
  socket.on('error', () => {}) // a reset from a peer we are turning away is of no interest
  socket.resume()
  socket.end(TOO_MANY_CONNECTIONS)
  setTimeout(() => socket.destroy(), REFUSAL_GRACE_MS).unref()
}
