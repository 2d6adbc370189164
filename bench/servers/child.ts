/**
 * The IPC contract between the bench and a server it runs in a child process
 * (snapper node, Socket.IO peer, uWS ceiling): the child says `ready` with
 * its ports; the bench may ask for a GC (before reading RSS), for a V8 CPU
 * profile of the measured window only (not of start-up and connects), for
 * its own loop delay and GC pauses over that window, and for a stop.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { PerformanceObserver } from 'node:perf_hooks'
import { Histogram } from '../lib/histogram.js'
import { recordLoopDelay } from '../lib/loop-delay.js'

export type ToChild =
  | { readonly type: 'gc' }
  | { readonly type: 'stop' }
  | { readonly type: 'profile-start' }
  | { readonly type: 'profile-stop'; readonly file: string }
  | { readonly type: 'loop-watch-start' }
  | { readonly type: 'loop-watch-stop' }

export type FromChild =
  | { readonly type: 'ready'; readonly gatewayPort: number; readonly producerPort: number }
  | { readonly type: 'gc-done'; readonly heapUsed: number; readonly external: number }
  | { readonly type: 'profile-started' }
  | { readonly type: 'profile-written' }
  | { readonly type: 'loop-watch-started' }
  | { readonly type: 'loop-watch-stopped'; readonly loopDelayP99Us: number; readonly gcMs: number }

/** Options every server child gets in `BENCH_SERVER` (JSON). */
export interface ServerOptions {
  readonly redisUrl: string
  readonly secret: string
  /** Which server of the target this is, 0-based (N workers: 0 … N-1). */
  readonly index: number
  readonly prefix: string
}

export function serverOptions(): ServerOptions {
  const text = process.env.BENCH_SERVER
  if (!text) throw new Error('BENCH_SERVER is not set: this file is started by the bench runner')
  return JSON.parse(text) as ServerOptions
}

/** Wires the IPC channel: answers `gc`, runs `stop` then exits. */
export function serveChild(
  ready: { gatewayPort: number; producerPort: number },
  stop: () => Promise<void>,
): void {
  const send = (message: FromChild): void => {
    process.send?.(message)
  }
  let inspector: Session | undefined
  let watch: LoopWatch | undefined
  process.on('message', (message: ToChild) => {
    if (message.type === 'loop-watch-start') {
      watch?.stop()
      watch = new LoopWatch()
      send({ type: 'loop-watch-started' })
    } else if (message.type === 'loop-watch-stop') {
      send({ type: 'loop-watch-stopped', ...(watch?.stop() ?? { loopDelayP99Us: 0, gcMs: 0 }) })
      watch = undefined
    } else if (message.type === 'profile-start') {
      inspector ??= new Session()
      inspector.connect()
      // CPU samples, and allocation samples (where the garbage comes from), over the same window.
      inspector.post('Profiler.enable', () =>
        inspector!.post('Profiler.start', () =>
          inspector!.post(
            'HeapProfiler.startSampling',
            {
              samplingInterval: 32768,
              includeObjectsCollectedByMajorGC: true,
              includeObjectsCollectedByMinorGC: true,
            },
            () => send({ type: 'profile-started' }),
          ),
        ),
      )
    } else if (message.type === 'profile-stop') {
      inspector?.post('Profiler.stop', (err, result) => {
        if (!err) writeFileSync(message.file, JSON.stringify(result.profile))
        inspector?.post('HeapProfiler.stopSampling', (heapErr, heap) => {
          if (!heapErr)
            writeFileSync(message.file.replace(/\.cpuprofile$/, '.heapprofile'), JSON.stringify(heap.profile))
          inspector?.disconnect()
          send({ type: 'profile-written' })
        })
      })
    } else if (message.type === 'gc') {
      ;(globalThis as { gc?: () => void }).gc?.()
      const { heapUsed, external } = process.memoryUsage()
      send({ type: 'gc-done', heapUsed, external })
    } else if (message.type === 'stop') {
      stop().then(
        () => process.exit(0),
        (err: unknown) => {
          process.stderr.write(`bench server stop failed: ${String(err)}\n`)
          process.exit(1)
        },
      )
    }
  })
  // The bench went away without a stop: do not linger.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready', ...ready })
}

/**
 * A server's own share of a measured latency: how late its loop ran a timer
 * (recordLoopDelay, as the generator's threads measure themselves), and how
 * long its garbage collector paused it.
 */
class LoopWatch {
  readonly #delay = new Histogram()
  #gcMs = 0
  readonly #timer = recordLoopDelay(this.#delay)
  readonly #gc = new PerformanceObserver(list => this.#addGc(list.getEntries()))

  constructor() {
    this.#gc.observe({ entryTypes: ['gc'] })
  }

  stop(): { loopDelayP99Us: number; gcMs: number } {
    clearInterval(this.#timer)
    this.#addGc(this.#gc.takeRecords())
    this.#gc.disconnect()
    return { loopDelayP99Us: this.#delay.quantile(0.99), gcMs: this.#gcMs }
  }

  #addGc(entries: readonly { readonly duration: number }[]): void {
    for (const entry of entries) this.#gcMs += entry.duration
  }
}
