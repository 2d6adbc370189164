import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * Ports for servers that need theirs before they start (redis-server, nginx,
 * the CLI). A port free now may be taken before the server binds it: by
 * another test file choosing at the same moment, or by any outgoing
 * connection, whose local port the kernel takes from its ephemeral range.
 * So ports come from below that range, and every helper that starts a
 * server runs it again on other ports when its bind fails (startOnFreePorts).
 */

/** The lowest port the kernel gives outgoing connections (Linux: 32768 unless tuned). */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  } catch {
    return 32768 // not Linux: its usual value
  }
})()
/** Chosen ports lie in [FIRST, LAST): port + 10000 (a Redis Cluster bus port) stays below the ephemeral range. */
const FIRST = 10_000
const LAST = Math.max(FIRST + 10_000, EPHEMERAL_LOW - 10_000)

const handedOut = new Set<number>()

/** Chooses a port for a server: freePort, or a test's own (one that takes it away first). */
export type PortChooser = () => Promise<number>

/**
 * A TCP port that is free on 127.0.0.1 now, below the ephemeral range and
 * never the same twice in this process. Our own listeners take port 0 instead.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = FIRST + Math.floor(Math.random() * (LAST - FIRST))
    if (handedOut.has(port) || !(await isFree(port))) continue
    handedOut.add(port)
    return port
  }
}

/**
 * `count` consecutive ports (worker i's gateway listens on gatewayPort + i),
 * free now and none handed out before: freePort cannot give one of them to
 * another server of the same test (the admin port inside the gateway run).
 */
export async function freePorts(count: number, choosePort: PortChooser = freePort): Promise<number> {
  for (;;) {
    const first = await choosePort()
    const rest = Array.from({ length: count - 1 }, (_, i) => first + 1 + i)
    if (rest.some(port => handedOut.has(port))) continue
    if (!(await everyFree(rest))) continue
    for (const port of [first, ...rest]) handedOut.add(port)
    return first
  }
}

async function everyFree(ports: readonly number[]): Promise<boolean> {
  for (const port of ports) if (!(await isFree(port))) return false
  return true
}

export function isFree(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })
}

/** A server could not bind a port it was given: someone took it after it was chosen. */
export class PortTaken extends Error {
  constructor(
    readonly what: string,
    readonly port: number,
  ) {
    super(`${what}: port ${port} was taken before it could bind it`)
    this.name = 'PortTaken'
  }
}

/** What redis-server and nginx print when a bind fails (Node says EADDRINUSE). */
export const BIND_FAILED = /Address already in use/

const ATTEMPTS = 5

/**
 * Runs `start`, which chooses its ports, and runs it again (on newly chosen
 * ports) as long as it rejects with PortTaken, up to 5 times. `start` must
 * notice a failed bind at once (the server's exit or log line), not by a
 * timeout, and leave nothing running when it rejects.
 */
export async function startOnFreePorts<T>(start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start()
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt === ATTEMPTS) throw err
    }
  }
}
