import { pino } from 'pino'
import type { Logger } from '../../src/log.js'

export interface LogLine {
  level: number
  msg: string
  skipped?: number
  perSecond?: number
  [field: string]: unknown
}

/** A logger at `level` whose JSON lines land, parsed, in `lines`. */
export function captureLog(level = 'info'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = []
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) })
  return { logger, lines }
}

export interface BoundedLines {
  /** The lines of the message itself. */
  logged: LogLine[]
  /** The lines that counted those left out (`<message> (more in one second)`), one per second. */
  counts: LogLine[]
  /** Their counts. */
  skipped: number[]
}

/** What a BoundedLog wrote of `message`. */
export function boundedLines(lines: readonly LogLine[], message: string): BoundedLines {
  const counts = lines.filter(line => line.msg === `${message} (more in one second)`)
  return {
    logged: lines.filter(line => line.msg === message),
    counts,
    skipped: counts.map(line => line.skipped ?? 0),
  }
}

/** The events told: each line, and each one counted. */
export const saidOf = ({ logged, skipped }: BoundedLines): number =>
  logged.length + skipped.reduce((sum, count) => sum + count, 0)
