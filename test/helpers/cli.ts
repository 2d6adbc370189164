import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import { freePort } from './ports.js'

/** The compiled CLI, as `npm start` and `snapper` run it. */
export const CLI = fileURLToPath(new URL('../../src/cli/snapper.js', import.meta.url))

const isFree = (port: number): Promise<boolean> =>
  new Promise(resolve => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })

/** `count` consecutive free ports (worker i's gateway listens on gatewayPort + i). */
export async function freePorts(count: number): Promise<number> {
  for (;;) {
    const first = await freePort()
    let isRun = true
    for (let i = 1; i < count && isRun; i++) isRun = await isFree(first + i)
    if (isRun) return first
  }
}

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
  /** Resolves with the exit code (null if killed by a signal). */
  readonly exited: Promise<number | null>
  /** Pids of the worker processes, from the admin app's /stats. */
  workerPids(statsToken: string): Promise<number[]>
  /** Sends a signal to the primary. */
  signal(signal: NodeJS.Signals): void
  /** Sends a signal to its whole process group, as Ctrl-C in a terminal does. */
  signalGroup(signal: NodeJS.Signals): void
}

/**
 * Runs `snapper start --workers N` as a child process on free ports and waits
 * until the admin app says it is ready. Killed (with its workers) at the end
 * of the test if it is still running.
 */
export async function startCli(
  t: ExecutionContext,
  options: { workers: number; env: Record<string, string>; args?: string[] },
): Promise<RunningCli> {
  const ports = {
    gateway: await freePorts(Math.max(1, options.workers)),
    producer: await freePort(),
    admin: await freePort(),
  }
  const child = spawn(
    process.execPath,
    [CLI, 'start', '--workers', String(options.workers), ...(options.args ?? [])],
    {
      env: {
        ...process.env,
        SNAPPER_HOST: '127.0.0.1',
        SNAPPER_GATEWAY_PORT: String(ports.gateway),
        SNAPPER_PRODUCER_PORT: String(ports.producer),
        SNAPPER_ADMIN_PORT: String(ports.admin),
        SNAPPER_LOG_LEVEL: 'warn',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // a process group of its own, for signalGroup
    },
  )
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk))
  const exited = once(child, 'exit').then(([code]) => code as number | null)
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

  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`snapper exited with ${child.exitCode}:\n${output}`)
    const ready = await fetch(`http://127.0.0.1:${ports.admin}/readyz`).then(
      response => response.status === 200,
      () => false,
    )
    if (ready) return running
    if (Date.now() > deadline) throw new Error(`snapper not ready within 30 s:\n${output}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
