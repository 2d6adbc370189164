import { at, now } from './clock.js'

export interface TimedEvent {
  readonly at: number
  readonly text: string
}

/** The faults as they happened, printed around each violation (VERBOSE=1: as they go). */
export class Timeline {
  readonly events: TimedEvent[] = []
  /** Redis CLIENT PAUSEs: no cursor flush completes in them. */
  readonly #pauses: { from: number; to: number }[] = []

  record(text: string): void {
    this.events.push({ at: now(), text })
    if (process.env.VERBOSE) console.log(at(now()), text)
  }

  paused(forMs: number): void {
    this.#pauses.push({ from: now(), to: now() + forMs })
  }

  /** How long Redis was paused between `from` and `to`. */
  pausedMs(from: number, to: number): number {
    return this.#pauses.reduce((sum, p) => sum + Math.max(0, Math.min(to, p.to) - Math.max(from, p.from)), 0)
  }
}
