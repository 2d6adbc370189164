import { createServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type Koa from 'koa'
import { PerAddress } from '../client-address.js'
import type { Config } from '../config/defaults.js'
import { httpError } from '../errors.js'
import { guard } from '../guard.js'
import type { Logger } from '../log.js'
import type { AdminCounters } from '../metrics/admin.js'
import { BoundedLog } from '../bounded-log.js'

/**
 * The admin app's HTTP server. Its port may be reachable by strangers, and
 * its process (the primary) also takes the producer connections, so it
 * holds at most adminMaxConnections, at most adminMaxConnectionsPerAddress
 * of them from one client address, and a request that has not arrived in
 * full within adminRequestTimeoutMs gets 408 and is closed: silent or
 * trickling connections cannot use up the process's open files, and one
 * address holding its share leaves the rest to the probes and the others.
 * Each refusal is counted in `counters.refused` by its bound's key and logged
 * (at most logMaxRefusalsPerSec lines a second).
 */
export function createAdminServer(
  app: Koa,
  config: Pick<
    Config,
    | 'adminMaxConnections'
    | 'adminMaxConnectionsPerAddress'
    | 'perAddressIpv6PrefixBits'
    | 'adminRequestTimeoutMs'
    | 'logMaxRefusalsPerSec'
  >,
  deps: {
    readonly counters: AdminCounters
    readonly logger: Logger
    /** Whether the process has files to spare for a new connection (src/open-files-guard.ts); else it is closed at once. */
    readonly admitsConnection?: () => boolean
  },
): AdminServer {
  const timeoutMs = config.adminRequestTimeoutMs
  const server = createServer(
    {
      requestTimeout: timeoutMs,
      headersTimeout: timeoutMs,
      // How often Node looks for requests past their timeout: 30 s by default, which would
      // hold a connection up to 30 s past a short timeout.
      connectionsCheckingInterval: Math.min(1000, timeoutMs),
    },
    app.callback(),
  )
  const log = deps.logger.child({ module: 'admin' })
  const refusals = new BoundedLog(log, config.logMaxRefusalsPerSec)
  const refused = (
    limit: 'adminMaxConnections' | 'adminMaxConnectionsPerAddress' | 'openFilesReserve',
    remote?: string,
  ): void => {
    deps.counters.refused[limit] = (deps.counters.refused[limit] ?? 0) + 1
    refusals.warn(log, { limit, remote }, 'admin connection refused: too many')
  }
  server.maxConnections = config.adminMaxConnections
  // Node closes a connection past maxConnections itself, and tells only this event.
  server.on(
    'drop',
    guard(log, 'admin drop', (data?: { remoteAddress?: string }) =>
      refused('adminMaxConnections', data?.remoteAddress),
    ),
  )
  const admitsConnection = deps.admitsConnection
  if (admitsConnection)
    server.on(
      'connection',
      guard(log, 'admin accept', (socket: Socket) => {
        if (admitsConnection()) return
        socket.destroy() // unanswered: the file it holds is what the process is short of
        refused('openFilesReserve', socket.remoteAddress)
      }),
    )
  const perAddress =
    config.adminMaxConnectionsPerAddress > 0
      ? new PerAddress(config.adminMaxConnectionsPerAddress, config.perAddressIpv6PrefixBits)
      : undefined
  if (perAddress)
    limitPerAddress(server, perAddress, {
      log,
      onRefused: address => refused('adminMaxConnectionsPerAddress', address),
    })
  return Object.assign(server, { connectionAddresses: () => perAddress?.size ?? 0 })
}

/** The admin's HTTP server, and how many addresses adminMaxConnectionsPerAddress counts now (a leak check's reading). */
export type AdminServer = Server & { readonly connectionAddresses: () => number }

/** The answer past adminMaxConnectionsPerAddress: written before any request is read, then the connection closes. */
function tooManyConnectionsAnswer(): Buffer {
  const { status, body } = httpError('TOO_MANY_CONNECTIONS', 'too many connections from your address')
  const json = JSON.stringify(body)
  return Buffer.from(
    `HTTP/1.1 ${status} Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(json)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${json}`,
  )
}

/** Counts each address's open connections (an IPv6 one's by its network); one past the limit is answered 503 and closed unread. */
function limitPerAddress(
  server: Server,
  perAddress: PerAddress,
  deps: { readonly log: Logger; readonly onRefused: (address: string) => void },
): void {
  const answer = tooManyConnectionsAnswer()
  const accept = (socket: Socket): void => {
    // A socket closed before this event has no address: nothing to count, Node drops it.
    const address = socket.remoteAddress
    if (address === undefined) return
    const group = perAddress.take(address)
    if (group === undefined) {
      socket.pause() // its request is never parsed, so the app never answers it too
      socket.write(answer)
      socket.destroySoon() // the server is half-open: end() alone would wait for the client's FIN
      deps.onRefused(address)
      return
    }
    socket.once('close', () => perAddress.give(group))
  }
  server.on(
    'connection',
    guard(deps.log, 'admin accept', accept, socket => socket.destroy()),
  )
}
