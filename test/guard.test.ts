import test from 'ava'
import { pino } from 'pino'
import { guard } from '../src/guard.js'

/** A real pino logger whose JSON lines are kept. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  return { logger, lines }
}

test('guard: a throw is logged once with its site and stack, recovery runs with the same arguments, nothing escapes', t => {
  const { logger, lines } = recordingLogger()
  const recovered: unknown[][] = []
  const handler = guard(
    logger,
    'test site',
    (a: number, b: string) => {
      throw new Error(`bug with ${a} ${b}`)
    },
    (...args) => void recovered.push(args),
  )
  t.notThrows(() => handler(1, 'x'))
  t.deepEqual(recovered, [[1, 'x']])
  t.is(lines.length, 1)
  t.like(lines[0], {
    level: 50,
    site: 'test site',
    msg: 'handler failed unexpectedly',
    err: { message: 'bug with 1 x' },
  })
  t.regex((lines[0]!.err as { stack: string }).stack, /guard\.test/)
})

test('guard: a recovery that throws is logged too, and still nothing escapes; without a throw nothing is logged', t => {
  const { logger, lines } = recordingLogger()
  const handler = guard(
    logger,
    'site',
    () => {
      throw new Error('first')
    },
    () => {
      throw new Error('second')
    },
  )
  t.notThrows(() => handler())
  t.deepEqual(
    lines.map(line => (line.err as { message: string }).message),
    ['first', 'second'],
  )
  let calls = 0
  guard(logger, 'site', () => void calls++)()
  t.is(calls, 1)
  t.is(lines.length, 2)
})
