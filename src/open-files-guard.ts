/**
 * Keeps a node serving when its process runs out of open files. Every
 * socket is a file, and the consumer gateway (uWebSockets.js) takes every
 * connection it can, before any request and with no count we can see: a
 * flood of idle connections fills the process up to its limit, where uWS
 * retries accept() without pause (a core busy) and the node's own new
 * sockets (a Redis reconnect, a producer, a probe) fail with EMFILE.
 *
 * So the guard holds `reserveFiles` files open (on /dev/null) that the
 * gateway cannot take, and every CHECK_MS tries to open one more:
 *
 *   serving ──(no file can be opened)──▶ exhausted
 *      ▲        gateway listener closed (new connections refused by the
 *      │        kernel, no accept loop), reserve given back for the rest
 *      └────(2 × reserveFiles can be opened)──── exhausted
 *               reserve taken again, gateway listens again
 *
 * Trying costs an open and a close whatever the process holds (counting its
 * files does not: listing /proc/self/fd before Linux 6.2 costs about 0.8 µs
 * a file). The flood's connections end by themselves (uWS cuts a connection
 * whose request has not come in full within about 10 s); sessions are
 * untouched. Meanwhile the producer and admin listeners take a new
 * connection only while more than half of the reserve is free
 * (`admitsConnection`), the rest being Redis's. README, "Limits and bad
 * input" (Open files); docs/RELIABILITY.md.
 */
import { closeSync, openSync } from 'node:fs'
import { guard } from './guard.js'
import type { Logger } from './log.js'

/** How often the guard tries to open a file (while exhausted: counts what is free), in ms. */
const CHECK_MS = 100

/** The reserve a process under `openFilesLimit` holds: at most a quarter of its limit, for the rest to serve. */
export function reserveFilesWithin(openFilesReserve: number, openFilesLimit: number): number {
  return Math.min(openFilesReserve, Math.floor(openFilesLimit / 4))
}

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
  readonly #reserveFiles: number
  readonly #gateway: AcceptSwitch
  readonly #log: Logger
  #held: number[] = []
  #exhaustedAtMs: number | undefined
  /** While exhausted: files free at the last check, less the connections admitted since. */
  #free = 0
  #isRecovering = false
  readonly #timer: NodeJS.Timeout

  constructor(reserveFiles: number, gateway: AcceptSwitch, log: Logger) {
    this.#reserveFiles = reserveFiles
    this.#gateway = gateway
    this.#log = log
    this.#hold()
    this.#timer = setInterval(
      guard(log, 'open files check', () => this.#check()),
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
   * exhausted, only while more than half of the reserve is free (each one admitted takes a file).
   */
  admitsConnection(): boolean {
    if (this.#exhaustedAtMs === undefined) return true
    if (this.#free > this.#reserveFiles / 2) {
      this.#free--
      return true
    }
    this.counters.refused++
    return false
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#release()
  }

  #check(): void {
    if (this.#exhaustedAtMs === undefined) {
      if (freeFiles(1) === 0) this.#exhaust()
      return
    }
    this.#free = freeFiles(2 * this.#reserveFiles)
    if (this.#free === 2 * this.#reserveFiles && !this.#isRecovering) void this.#recover()
  }

  #exhaust(): void {
    this.#exhaustedAtMs = Date.now()
    this.counters.exhausted++
    this.#gateway.pauseAccepting()
    this.#release()
    this.#free = freeFiles(2 * this.#reserveFiles)
    this.#log.warn(
      { openFilesReserve: this.#reserveFiles, freeFiles: this.#free },
      'open files exhausted: consumer gateway stops accepting until they are free again',
    )
  }

  async #recover(): Promise<void> {
    this.#isRecovering = true
    this.#hold()
    try {
      await this.#gateway.resumeAccepting()
    } catch (err) {
      this.#release() // tried again at the next check
      this.#log.error({ err }, 'consumer gateway cannot listen again')
      return
    } finally {
      this.#isRecovering = false
    }
    this.#log.info(
      { exhaustedMs: Date.now() - (this.#exhaustedAtMs ?? Date.now()) },
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

/**
 * How many of `upTo` more files the process can open now: opened (on /dev/null) and
 * closed again at once, synchronously, so nothing else of the node can miss them meanwhile.
 */
function freeFiles(upTo: number): number {
  const opened: number[] = []
  try {
    while (opened.length < upTo) opened.push(openSync('/dev/null', 'r'))
  } catch (err) {
    const { code } = err as NodeJS.ErrnoException
    if (code !== 'EMFILE' && code !== 'ENFILE') throw err
  } finally {
    for (const fd of opened) closeSync(fd)
  }
  return opened.length
}
