/**
 * The open-files guard on its own (src/open-files-guard.ts), in a child
 * process under `ulimit -n 64` that fills itself with files: each scenario of
 * test/helpers/open-files-guard-run.ts reports what the guard did, check by
 * check (its timer is mocked there). What a node does with it end to end:
 * test/e2e/open-files.test.ts.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { RESERVE, type LogLine } from './helpers/open-files-guard-run.js'

const SCRIPT = fileURLToPath(new URL('./helpers/open-files-guard-run.js', import.meta.url))
/** Soft and hard: Node raises its soft limit to the hard one at start. */
const OPEN_FILES_LIMIT = 64

function run(scenario: string): Record<string, unknown> {
  const child = spawnSync(
    'bash',
    [
      '-c',
      `ulimit -n ${OPEN_FILES_LIMIT} && exec "$0" --no-warnings "$@"`,
      process.execPath,
      SCRIPT,
      scenario,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 },
  )
  if (child.status !== 0) throw new Error(`${scenario} exited with ${child.status}:\n${child.stderr}`)
  return JSON.parse(child.stdout) as Record<string, unknown>
}

test('files run out: the gateway pauses at the next check, connections are admitted against half the reserve, it resumes at twice the reserve free', t => {
  const facts = run('episode')
  t.is(facts.reserveHeldAtStart, RESERVE, 'the reserve is held from the start')
  t.is(facts.pausesWhileFilesFree, 0, 'no pause while files can be opened')
  t.is(facts.checksToPause, 1, 'paused at the first check after the files ran out')
  t.is(facts.openableOnceExhausted, RESERVE, 'the reserve was given back: that many files can be opened')
  t.deepEqual(
    facts.admitted,
    [true, true, true, true, false, false, false, false],
    'admitted while more than half the reserve is free, each one counted against it; then refused',
  )
  t.is(facts.refusedWhileLow, RESERVE / 2)
  t.false(facts.admitsAfterRecount, 'the next check counts the admitted connections’ files: still refused')
  t.is(facts.openableShortOfTwice, 2 * RESERVE - 1)
  t.is(facts.resumesShortOfTwice, 0, 'no resume while fewer than twice the reserve are free')
  t.true(facts.isExhaustedShortOfTwice)
  t.true(facts.admitsWithMostFree, 'admitted again once more than half the reserve is free')
  t.is(facts.resumes, 1, 'resumed at the check that found twice the reserve free')
  t.false(facts.isExhaustedAfterRecovery)
  t.is(facts.reserveHeldAfterRecovery, RESERVE, 'the reserve is taken back')
  t.deepEqual(facts.admitsWhileServing, [true, true, true], 'every connection admitted while serving')
  t.is(facts.refusedAfterRecovery, RESERVE / 2 + 1)
  t.is(facts.warnsInFirstEpisode, 1, 'one warn line for the episode, whatever its checks')
  t.is(facts.infosInFirstEpisode, 1, 'one info line for the recovery')
  t.is(facts.pauses, 2, 'a second episode pauses again')
  t.is(facts.resumesInAll, 2)
  t.deepEqual(facts.counters, { exhausted: 2, refused: RESERVE / 2 + 1 })
  const warns = facts.warns as LogLine[]
  t.is(warns.length, 2, 'one warn line per episode')
  t.like(warns[0], { openFilesReserve: RESERVE, freeFiles: RESERVE })
  const infos = facts.infos as LogLine[]
  t.is(infos.length, 2, 'one info line per recovery')
  t.is(typeof infos[0]?.exhaustedMs, 'number')
})

test('the gateway cannot listen again (its port taken meanwhile): logged at error, reserve given back, retried at a later check', t => {
  const { afterFailure, afterRetry } = run('failed-resume') as Record<string, Record<string, unknown>>
  t.like(afterFailure, { resumes: 1, isExhausted: true, reserveHeld: 0, infos: 0 })
  const errors = afterFailure!.errors as LogLine[]
  t.is(errors.length, 1)
  t.like(errors[0], { err: { code: 'EADDRINUSE' } })
  t.deepEqual(afterRetry, { resumes: 2, isExhausted: false, reserveHeld: RESERVE, errors: 1, infos: 1 })
})

test('stop() gives the reserve back and ends the checks', t => {
  t.deepEqual(run('stop'), {
    reserveHeldBeforeStop: RESERVE,
    reserveHeldAfterStop: 0,
    pausesAfterStop: 0,
    lines: 0,
  })
})
