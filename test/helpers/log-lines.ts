import type { ExecutionContext } from 'ava'
import { pino } from 'pino'
import type { Logger } from '../../src/log.js'
import { eventually } from './eventually.js'

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

/** pino's numbers for the levels a BoundedLog writes at. */
const LEVELS = { info: 30, warn: 40, error: 50 } as const

/**
 * Asserts that a BoundedLog said each of `total` events of `message` that came
 * at once (within a second, or two on a loaded machine): at most `perSecond`
 * lines of it at `level`, each with its error, and the rest counted in the
 * lines `<message> (more in one second)`, one per second. Waits for those.
 */
export async function assertBounded(
  t: ExecutionContext,
  lines: readonly LogLine[],
  message: string,
  expected: { total: number; perSecond: number; level: keyof typeof LEVELS },
): Promise<void> {
  const logged = (): LogLine[] => lines.filter(line => line.msg === message)
  const counts = (): LogLine[] => lines.filter(line => line.msg === `${message} (more in one second)`)
  const said = (): number => logged().length + counts().reduce((sum, line) => sum + (line.skipped ?? 0), 0)
  await eventually(() => said() === expected.total, { what: `every "${message}" to be logged or counted` })
  const level = LEVELS[expected.level]
  t.true(counts().length >= 1 && counts().length <= 2, `${counts().length} counts, ${logged().length} lines`)
  t.true(logged().length <= expected.perSecond * counts().length, `${logged().length} lines`)
  t.true(
    logged().every(line => line.level === level && line.err !== undefined),
    `at ${expected.level}, with the error`,
  )
  t.true(counts().every(line => line.level === level && line.perSecond === expected.perSecond))
}
