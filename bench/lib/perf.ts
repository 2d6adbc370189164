/**
 * On-CPU profiles with Linux `perf` (`--perf DIR`): every server process and
 * Redis, sampled over each measured window. The V8 profiles of `--profile`
 * sample on a timer, so on a saturated machine a process descheduled right
 * after a socket write has its wait for a CPU charged to the JavaScript frame
 * that wrote; `perf` counts time on a CPU only, kernel and V8 threads (the
 * collector, the optimizing compiler) included (docs/performance.md, section
 * 3). The servers run with `--perf-basic-prof-only-functions`, so their
 * JavaScript has names (`/tmp/perf-<pid>.map`, which `perf report` reads).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import type { Readable, Writable } from 'node:stream'

/** Self time only, no call graphs, as text. */
const REPORT_FLAGS = ['--stdio', '--no-children', '-g', 'none']

/** What every server process runs with under `--perf`. */
export const PERF_NODE_FLAGS: readonly string[] = ['--perf-basic-prof-only-functions']

/** Throws, saying what to install, unless `perf record` works here. */
export function assertPerf(): void {
  const probe = spawnSync('perf', ['record', '-q', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' })
  if (probe.error) throw new Error('--perf needs Linux perf (Debian: apt-get install linux-perf)')
  if (probe.status !== 0)
    throw new Error(`--perf: perf record does not run here: ${probe.stderr.trim().split('\n')[0]}`)
}

/**
 * One window's recording of `pids` into `<base>.data`; stop() also writes
 * `<base>.txt`. perf starts with its events off and is told over its control
 * descriptors (fd 3 in, fd 4 for its acks) when to sample: attaching to the
 * processes and their threads takes longer than a short window lasts.
 */
export class PerfRecording {
  readonly #perf: ChildProcess
  readonly #base: string
  readonly #exited: Promise<unknown>
  /** What perf wrote to stderr: why it stopped, if it did. */
  #said = ''

  private constructor(perf: ChildProcess, base: string) {
    this.#perf = perf
    this.#base = base
    this.#exited = once(perf, 'exit').catch(() => undefined) // failing to start counts as having stopped
    perf.stderr!.on('data', (chunk: Buffer) => (this.#said += chunk.toString()))
  }

  static async start(pids: readonly number[], base: string): Promise<PerfRecording> {
    const args = ['record', '-q', '-D', '-1', '--control', 'fd:3,4', '-F', '2999', '-g', '-o', `${base}.data`]
    const perf = spawn('perf', [...args, '-p', pids.join(',')], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    })
    const recording = new PerfRecording(perf, base)
    await recording.#tell('enable')
    return recording
  }

  /** Stops sampling, then perf (SIGINT, as Ctrl-C), and writes the summary: CPU by thread and binary, then by symbol. */
  async stop(): Promise<void> {
    await this.#tell('disable')
    this.#perf.kill('SIGINT')
    await this.#exited
    const data = `${this.#base}.data`
    const report = (sort: string, percentLimit: string): string => {
      const args = ['report', '-i', data, ...REPORT_FLAGS, '--sort', sort, '--percent-limit', percentLimit]
      const done = spawnSync('perf', args, { encoding: 'utf8', maxBuffer: 64 << 20 })
      return done.status === 0 ? done.stdout : `perf report failed: ${done.stderr}`
    }
    writeFileSync(`${this.#base}.txt`, `${report('pid,dso', '0.5')}\n${report('pid,sym', '0.3')}`)
  }

  /** Sends perf a control command and waits for its ack; throws with perf's own words if it exits instead. */
  async #tell(command: 'enable' | 'disable'): Promise<void> {
    const control = this.#perf.stdio[3] as Writable
    const acked = once(this.#perf.stdio[4] as Readable, 'data')
    control.write(`${command}\n`)
    const first = await Promise.race([acked.then(() => 'ack'), this.#exited.then(() => 'exit')])
    if (first === 'exit')
      throw new Error(`perf record stopped before it would ${command}: ${this.#said.trim()}`)
  }
}
