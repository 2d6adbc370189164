/**
 * Keeps a node serving when its process runs out of open files. Every
 * socket is a file, and the consumer gateway (uWebSockets.js) takes every
 * connection it can, before any request and with no count we can see: a
 * flood of idle connections fills the process up to its limit, where uWS
 * retries accept() without pause (a core busy) and the node's own new
 * sockets (a Redis reconnect, a producer, a probe) fail with EMFILE.
 *
 * So the guard holds `reserveFiles` files open (on /dev/null) that the
 * gateway cannot take, and looks at the process's count every CHECK_MS:
 *
 *   serving ──(open files ≥ limit − EXHAUSTED_MARGIN)──▶ exhausted
 *      ▲        gateway listener closed (new connections refused by the
 *      │        kernel, no accept loop), reserve given back for the rest
 *      └────(open files ≤ limit − 2 × reserveFiles)──── exhausted
 *               reserve taken again, gateway listens again
 *
 * The flood's connections end by themselves (uWS cuts a connection whose
 * request has not come in full within about 10 s); sessions are untouched.
 * Meanwhile the producer and admin listeners take a new connection only
 * while half of the reserve is free (`admitsConnection`), the rest being
 * Redis's. README, "Limits and bad input" (Open files); docs/RELIABILITY.md.
 */
import { closeSync, openSync, statSync } from 'node:fs'
import { guard } from './guard.js'
import type { Logger } from './log.js'
import { countOpenFiles } from './open-files.js'

/** How often the process's open files are counted, in ms (a stat of /proc/self/fd: ~20 µs). */
const CHECK_MS = 100
/** Free files at which the process counts as exhausted: the gateway's accept fails at 0. */
const EXHAUSTED_MARGIN = 2

/** What the guard stops and starts: the consumer gateway's listener. */
export interface AcceptSwitch {
  pauseAccepting(): void
  resumeAccepting(): Promise<void>
}

export interface OpenFilesCounters {
  /** Times the process's open files ran out (one per episode). */
  exhausted: number
  /** Producer and admin connections closed at once while the reserve was low. */
  refused: number
}

export class OpenFilesGuard {
  readonly counters: OpenFilesCounters = { exhausted: 0, refused: 0 }
  readonly #limit: number
  readonly #reserveFiles: number
  readonly #gateway: AcceptSwitch
  readonly #log: Logger
  #held: number[] = []
  #exhaustedAtMs: number | undefined
  #isChecking = false
  readonly #timer: NodeJS.Timeout

  constructor(options: { limit: number; reserveFiles: number }, gateway: AcceptSwitch, log: Logger) {
    this.#limit = options.limit
    this.#reserveFiles = options.reserveFiles
    this.#gateway = gateway
    this.#log = log
    this.#hold()
    this.#timer = setInterval(
      guard(log, 'open files check', () => void this.#check()),
      CHECK_MS,
    )
    this.#timer.unref()
  }

  /** Whether the process's open files ran out and the gateway does not accept. */
  get isExhausted(): boolean {
    return this.#exhaustedAtMs !== undefined
  }

  /**
   * Whether a new producer or admin connection may stay: always while serving; while
   * exhausted, only if half of the reserve is still free (counted now, it changes by the ms).
   */
  admitsConnection(): boolean {
    if (this.#exhaustedAtMs === undefined) return true
    const open = statSync('/proc/self/fd').size // 0 on Linux before 6.2: admitted, as without the guard
    if (this.#limit - open > this.#reserveFiles / 2) return true
    this.counters.refused++
    return false
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#release()
  }

  async #check(): Promise<void> {
    if (this.#isChecking) return // an old kernel's listing outlasted CHECK_MS
    this.#isChecking = true
    try {
      const open = await countOpenFiles()
      if (this.#exhaustedAtMs === undefined && open >= this.#limit - EXHAUSTED_MARGIN) this.#exhaust(open)
      else if (this.#exhaustedAtMs !== undefined && open <= this.#limit - 2 * this.#reserveFiles)
        await this.#recover(open)
    } finally {
      this.#isChecking = false
    }
  }

  #exhaust(open: number): void {
    this.#exhaustedAtMs = Date.now()
    this.counters.exhausted++
    this.#gateway.pauseAccepting()
    this.#release()
    this.#log.warn(
      { openFiles: open, openFilesLimit: this.#limit, openFilesReserve: this.#reserveFiles },
      'open files exhausted: consumer gateway stops accepting until they are free again',
    )
  }

  async #recover(open: number): Promise<void> {
    this.#hold()
    try {
      await this.#gateway.resumeAccepting()
    } catch (err) {
      this.#release() // tried again at the next check
      this.#log.error({ err }, 'consumer gateway cannot listen again')
      return
    }
    this.#log.info(
      { openFiles: open, exhaustedMs: Date.now() - (this.#exhaustedAtMs ?? Date.now()) },
      'open files free again: consumer gateway accepts again',
    )
    this.#exhaustedAtMs = undefined
  }

  #hold(): void {
    try {
      while (this.#held.length < this.#reserveFiles) this.#held.push(openSync('/dev/null', 'r'))
    } catch (err) {
      // EMFILE: files are short already; what is held is the reserve until the next recovery.
      this.#log.warn({ err, held: this.#held.length }, 'open files reserve not complete')
    }
  }

  #release(): void {
    for (const fd of this.#held) closeSync(fd)
    this.#held = []
  }
}
