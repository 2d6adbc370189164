import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { freePort, freePorts, PortTaken, startOnFreePorts, type PortChooser } from './ports.js'
import { eventually, pause } from './eventually.js'
import { uniquePrefix } from './redis.js'
import { dieWithThisProcess } from './watchdog.js'

/** The compiled CLI, as `npm start` and `snapper` run it. */
export const CLI = fileURLToPath(new URL('../../src/cli/snapper.js', import.meta.url))

export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false // ESRCH: gone
  }
}

export interface RunningCli {
  readonly child: ChildProcess
  readonly ports: { readonly gateway: number; readonly producer: number; readonly admin: number }
  /** Everything it printed so far (JSON log lines, warnings). */
  output(): string
  /** Resolves with the exit code (null if killed by a signal), once output() holds all it printed. */
  readonly exited: Promise<number | null>
  /** Pids of the worker processes, from the admin app's /stats. */
  workerPids(statsToken: string): Promise<number[]>
  /** Sends a signal to the primary. */
  signal(signal: NodeJS.Signals): void
  /** Sends a signal to its whole process group, as Ctrl-C in a terminal does. */
  signalGroup(signal: NodeJS.Signals): void
}

export interface CliOptions {
  readonly workers: number
  /** SNAPPER_* settings; a port set here is the caller's, never replaced. */
  readonly env: Record<string, string>
  readonly args?: string[]
  /** Chooses the ports the env does not set. @default freePort */
  readonly choosePort?: PortChooser
  /**
   * Runs it under this open-files limit (`ulimit -n`, soft and hard: Node raises its soft
   * limit to the hard one at start). @default the test's own
   */
  readonly openFilesLimit?: number
}

/** Where startCli registers what must be undone when the test ends (ava's `t` is one). */
export interface Teardowns {
  teardown(fn: () => unknown): void
}

/**
 * Runs `snapper start --workers N` as a child process on free ports and waits
 * until the admin app says it is ready (with SNAPPER_ADMIN_PORT 0, until it
 * logs "broker started": give it SNAPPER_LOG_LEVEL info). If a port it chose
 * was taken before the CLI could bind it, runs it again on others. Killed
 * (with its workers) at the end of the test if it is still running.
 */
export function startCli(t: Teardowns, options: CliOptions): Promise<RunningCli> {
  return startOnFreePorts(() => launchCli(t, options))
}

/**
 * `snapper start` with `workers` workers on a Redis (a key prefix of its own), signing with
 * `secret`, no drain spread unless `more` (further environment) says otherwise.
 */
export function startCliOn(
  t: Teardowns,
  redisUrl: string,
  secret: string,
  workers = 2,
  more: Record<string, string> = {},
): Promise<RunningCli> {
  const env = {
    SNAPPER_REDIS: redisUrl,
    SNAPPER_REDIS_PREFIX: uniquePrefix(),
    SNAPPER_TOKEN_SECRETS: secret,
    SNAPPER_DRAIN_SPREAD_MS: '0',
    ...more,
  }
  return startCli(t, { workers, env })
}

async function launchCli(
  t: Teardowns,
  { workers, env, args = [], choosePort = freePort, openFilesLimit }: CliOptions,
): Promise<RunningCli> {
  const given = (name: string): number | undefined =>
    env[name] === undefined ? undefined : Number(env[name])
  const chosen = new Set<number>()
  const choose = async (count = 1): Promise<number> => {
    const first = await freePorts(count, choosePort)
    for (let i = 0; i < count; i++) chosen.add(first + i)
    return first
  }
  const ports = {
    gateway: given('SNAPPER_GATEWAY_PORT') ?? (await choose(Math.max(1, workers))),
    producer: given('SNAPPER_PRODUCER_PORT') ?? (await choose()),
    admin: given('SNAPPER_ADMIN_PORT') ?? (await choose()),
  }
  const command = [process.execPath, CLI, 'start', '--workers', String(workers), ...args]
  const limited =
    openFilesLimit === undefined
      ? command
      : ['sh', '-c', `ulimit -n ${openFilesLimit} && exec "$@"`, 'sh', ...command]
  const child = spawn(limited[0]!, limited.slice(1), {
    env: {
      ...process.env,
      SNAPPER_HOST: '127.0.0.1',
      SNAPPER_LOG_LEVEL: 'warn',
      ...env,
      SNAPPER_GATEWAY_PORT: String(ports.gateway),
      SNAPPER_PRODUCER_PORT: String(ports.producer),
      SNAPPER_ADMIN_PORT: String(ports.admin),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // a process group of its own, for signalGroup
  })
  dieWithThisProcess(child)
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk))
  // Its output is read to the end at 'close', after 'exit'; a worker still holding the pipes must not hold the wait.
  // If this process was starved past the pause, its timer runs before the read of what the child printed last:
  // setImmediate waits for the poll phase that reads it.
  const closed = new Promise(resolve => child.once('close', resolve))
  const exited = once(child, 'exit').then(async ([code]) => {
    await Promise.race([closed, pause(2000).then(() => new Promise(resolve => setImmediate(resolve)))])
    return code as number | null
  })
  const seenPids = new Set<number>()
  const running: RunningCli = {
    child,
    ports,
    output: () => output,
    exited,
    async workerPids(token) {
      const response = await fetch(`http://127.0.0.1:${ports.admin}/stats?token=${token}`)
      const body = (await response.json()) as { workers?: { pid?: number }[] }
      const pids = (body.workers ?? []).flatMap(worker => (worker.pid ? [worker.pid] : []))
      for (const pid of pids) seenPids.add(pid)
      return pids
    },
    signal: signal => child.kill(signal),
    signalGroup: signal => process.kill(-child.pid!, signal),
  }
  t.teardown(async () => {
    // Only if the test failed half-way: nothing may outlive it.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const pid of seenPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  })

  // The admin port answering may be another's server, until this process holds it.
  const isReady = async (): Promise<boolean> =>
    ports.admin === 0
      ? output.includes('"broker started"')
      : isListeningIn(child.pid!, ports.admin) &&
        fetch(`http://127.0.0.1:${ports.admin}/readyz`).then(
          response => response.status === 200,
          () => false,
        )
  const isUp = async (): Promise<boolean> => {
    if (child.exitCode !== null) {
      const taken = [...output.matchAll(BIND_FAILED_ON)].map(match => Number(match[1]))
      const ours = taken.find(port => chosen.has(port))
      if (ours !== undefined) throw new PortTaken('snapper', ours)
      throw new Error(`snapper exited with ${child.exitCode}:\n${output}`)
    }
    return isReady()
  }
  await eventually(isUp, { what: () => `snapper to be ready:\n${output}`, timeoutMs: 30_000, everyMs: 100 })
  return running
}

/** How the CLI names a port it could not listen on (Node's EADDRINUSE, the gateway's own words). */
const BIND_FAILED_ON = /(?:EADDRINUSE|cannot listen on)[^\n]*?127\.0\.0\.1:(\d+)/g

/** Whether process `pid` holds the listening TCP socket of `port` (Linux: /proc/net/tcp and its fds). */
function isListeningIn(pid: number, port: number): boolean {
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `
  const inodes = new Set<string>()
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n')) {
    const fields = line.trim().split(/\s+/)
    // local_address, rem_address, st (0A = LISTEN) … inode (the 10th field)
    if (`${fields[1]} `.endsWith(portHex) && fields[3] === '0A' && fields[9])
      inodes.add(`socket:[${fields[9]}]`)
  }
  try {
    return readdirSync(`/proc/${pid}/fd`).some(fd => {
      try {
        return inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))
      } catch {
        return false // closed while we looked
      }
    })
  } catch {
    return false // the process is gone: the exit check reports it
  }
}
