import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { availableParallelism, cpus, release } from 'node:os'

/** Linux clock ticks per second for /proc/<pid>/stat (sysconf(_SC_CLK_TCK), 100 on every Linux we run). */
const TICKS_PER_SEC = 100
const PAGE_BYTES = 4096

/** CPU seconds in user mode and in the kernel (system time: sends, receives, wake-ups). */
export interface CpuTimes {
  readonly user: number
  readonly system: number
}

/** The CPU seconds a process has used so far; 0 once it is gone. 10 ms resolution. */
export function cpuTimes(pid: number): CpuTimes {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { user: Number(fields[11]) / TICKS_PER_SEC, system: Number(fields[12]) / TICKS_PER_SEC }
  } catch {
    return { user: 0, system: 0 } // the process exited: it uses no more CPU
  }
}

/** Resident set size of a process, in bytes; 0 once it is gone. */
export function rssBytes(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE_BYTES
  } catch {
    return 0 // the process exited
  }
}

/** Open file descriptors of a process (sockets included); 0 once it is gone. */
export function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return 0 // the process exited
  }
}

/** CPU time of a set of processes over a window: start() then read() gives seconds used. */
export class CpuMeter {
  readonly #pids: () => readonly number[]
  #start = new Map<number, CpuTimes>()

  constructor(pids: () => readonly number[]) {
    this.#pids = pids
  }

  start(): void {
    this.#start = new Map(this.#pids().map(pid => [pid, cpuTimes(pid)]))
  }

  /** Seconds of CPU since start(): user, system (the kernel's work on the processes' behalf). */
  read(): CpuTimes {
    let user = 0
    let system = 0
    for (const pid of this.#pids()) {
      const now = cpuTimes(pid)
      const start = this.#start.get(pid)
      user += now.user - (start?.user ?? 0)
      system += now.system - (start?.system ?? 0)
    }
    return { user, system }
  }
}

/** This process (the load generator: main thread and every worker thread), in seconds. */
export function ownCpuTimes(): CpuTimes {
  const usage = process.cpuUsage()
  return { user: usage.user / 1e6, system: usage.system / 1e6 }
}

export interface Machine {
  readonly cores: number
  readonly cpu: string
  readonly node: string
  readonly redis: string
  readonly kernel: string
  readonly memoryGb: number
}

export function describeMachine(redisVersion: string): Machine {
  const meminfo = readFileSync('/proc/meminfo', 'utf8')
  const totalKb = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? 0)
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    redis: redisVersion,
    kernel: release(),
    memoryGb: Math.round(totalKb / 1024 / 1024),
  }
}

/**
 * Microseconds some task has waited for a CPU since boot (Linux PSI,
 * /proc/pressure/cpu `some total`); undefined where PSI is not available.
 * Over a window, its growth divided by the window is the share of time the
 * cores were oversubscribed: by the bench itself, or by anything else.
 */
export function cpuStallUs(): number | undefined {
  try {
    const some = readFileSync('/proc/pressure/cpu', 'utf8').split('\n')[0] ?? ''
    const total = /total=(\d+)/.exec(some)?.[1]
    return total === undefined ? undefined : Number(total)
  } catch {
    return undefined // no PSI on this kernel: the column stays empty
  }
}

/**
 * Connections the kernel has dropped since boot because a listening socket's
 * accept queue was full (TcpExt ListenOverflows, all sockets of the machine).
 * Such a client's handshake completes only when the server resends its SYN-ACK,
 * a second later.
 */
export function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n')
  const names = lines.find(line => line.startsWith('TcpExt:'))?.split(' ') ?? []
  const values = lines.filter(line => line.startsWith('TcpExt:'))[1]?.split(' ') ?? []
  return Number(values[names.indexOf('ListenOverflows')] ?? NaN)
}

/** The 1-minute load average when the run started: other work on the machine shows up here. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
}

/** `redis-server --version`'s version number. */
export function redisServerVersion(): string {
  const text = execFileSync('redis-server', ['--version'], { encoding: 'utf8' })
  return /v=([\d.]+)/.exec(text)?.[1] ?? text.trim()
}
