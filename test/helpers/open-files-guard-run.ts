/**
 * Runs an OpenFilesGuard through one scenario in this process, which the
 * test starts under a low open-files limit (test/open-files-guard.test.ts),
 * and prints what it saw as one JSON line. The guard's interval is Node's mock
 * timer: one `check()` is one check of the guard's, so counts of checks are
 * exact. The files this script fills the process with are opened on itself,
 * so that those on /dev/null are the guard's reserve (and stdin's).
 *
 *   node open-files-guard-run.js episode | failed-resume | stop
 */
import { closeSync, openSync, readdirSync, readlinkSync } from 'node:fs'
import { mock } from 'node:test'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { OpenFilesGuard, type AcceptSwitch } from '../../src/open-files-guard.js'

/** The guard's reserve: small, so that twice it fits many times in the test's limit. */
export const RESERVE = 8
/** The guard's CHECK_MS: a tick of this runs one check. */
const CHECK_MS = 100

export interface LogLine {
  readonly level: number
  readonly msg: string
  readonly [field: string]: unknown
}

/** The gateway, as the guard switches it: counts its calls; `failingResumes` resumes reject, as a port taken would. */
class RecordingSwitch implements AcceptSwitch {
  pauses = 0
  resumes = 0
  failingResumes = 0
  pauseAccepting(): void {
    this.pauses++
  }
  async resumeAccepting(): Promise<void> {
    this.resumes++
    if (this.failingResumes-- > 0)
      throw Object.assign(new Error('listen EADDRINUSE: address already in use'), { code: 'EADDRINUSE' })
  }
}

const SELF = fileURLToPath(import.meta.url)
/** Files this script holds (on itself), as a flood's sockets would. */
const ballast: number[] = []

/** Opens files until the process may open no more. */
function fill(): void {
  try {
    for (;;) ballast.push(openSync(SELF, 'r'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EMFILE') throw err
  }
}

function closeBallast(count: number): void {
  for (let i = 0; i < count; i++) closeSync(ballast.pop()!)
}

/** How many of `upTo` more files can be opened now (opened and closed again). */
function openable(upTo: number): number {
  const opened: number[] = []
  try {
    while (opened.length < upTo) opened.push(openSync(SELF, 'r'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EMFILE') throw err
  } finally {
    for (const fd of opened) closeSync(fd)
  }
  return opened.length
}

/** Files on /dev/null this process holds (listing /proc/self/fd takes a file: call it while one is free). */
function devNullFiles(): number {
  return readdirSync('/proc/self/fd').filter(fd => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/null'
    } catch {
      return false // the listing's own file, closed by now
    }
  }).length
}

/** One check of the guard's, and what it started (a resume) settled. */
async function check(): Promise<void> {
  mock.timers.tick(CHECK_MS)
  await new Promise(resolve => setImmediate(resolve))
}

const lines: LogLine[] = []
const log = pino(
  { level: 'debug' },
  { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
)
const linesSaying = (level: number, text: string): LogLine[] =>
  lines.filter(line => line.level === level && line.msg.startsWith(text))
const WARN = 40
const INFO = 30
const ERROR = 50

/**
 * Two episodes: the files run out, connections come while the reserve is low,
 * files come back short of twice the reserve, then enough of them.
 */
async function episode(): Promise<Record<string, unknown>> {
  const stdin = devNullFiles()
  const gateway = new RecordingSwitch()
  const guard = new OpenFilesGuard(RESERVE, gateway, log)
  const reserveHeldAtStart = devNullFiles() - stdin
  for (let i = 0; i < 3; i++) await check()
  const pausesWhileFilesFree = gateway.pauses

  fill()
  let checksToPause = 0
  while (gateway.pauses === 0 && checksToPause < 10) {
    await check()
    checksToPause++
  }
  const openableOnceExhausted = openable(2 * RESERVE)
  // Each connection admitted then holds a file, as its socket does.
  const admitted: boolean[] = []
  for (let i = 0; i < RESERVE; i++) {
    const admits = guard.admitsConnection()
    admitted.push(admits)
    if (admits) ballast.push(openSync(SELF, 'r'))
  }
  const refusedWhileLow = guard.counters.refused
  await check()
  const admitsAfterRecount = guard.admitsConnection()

  closeBallast(2 * RESERVE - 1 - openable(2 * RESERVE))
  const openableShortOfTwice = openable(2 * RESERVE)
  for (let i = 0; i < 5; i++) await check()
  const resumesShortOfTwice = gateway.resumes
  const isExhaustedShortOfTwice = guard.isExhausted
  const admitsWithMostFree = guard.admitsConnection()

  closeBallast(ballast.length)
  await check()
  const resumes = gateway.resumes
  const isExhaustedAfterRecovery = guard.isExhausted
  const reserveHeldAfterRecovery = devNullFiles() - stdin
  const admitsWhileServing = [guard.admitsConnection(), guard.admitsConnection(), guard.admitsConnection()]
  const refusedAfterRecovery = guard.counters.refused
  const warnsInFirstEpisode = linesSaying(WARN, 'open files exhausted').length
  const infosInFirstEpisode = linesSaying(INFO, 'open files free again').length

  fill()
  await check()
  await check()
  closeBallast(ballast.length)
  await check()
  await check()
  const facts = {
    reserveHeldAtStart,
    pausesWhileFilesFree,
    checksToPause,
    openableOnceExhausted,
    admitted,
    refusedWhileLow,
    admitsAfterRecount,
    openableShortOfTwice,
    resumesShortOfTwice,
    isExhaustedShortOfTwice,
    admitsWithMostFree,
    resumes,
    isExhaustedAfterRecovery,
    reserveHeldAfterRecovery,
    admitsWhileServing,
    refusedAfterRecovery,
    warnsInFirstEpisode,
    infosInFirstEpisode,
    pauses: gateway.pauses,
    resumesInAll: gateway.resumes,
    counters: { ...guard.counters },
    warns: linesSaying(WARN, 'open files exhausted'),
    infos: linesSaying(INFO, 'open files free again'),
  }
  guard.stop()
  return facts
}

/** The gateway cannot listen again at the first try (its port taken meanwhile). */
async function failedResume(): Promise<Record<string, unknown>> {
  const stdin = devNullFiles()
  const gateway = new RecordingSwitch()
  gateway.failingResumes = 1
  const guard = new OpenFilesGuard(RESERVE, gateway, log)
  fill()
  await check()
  closeBallast(ballast.length)
  await check()
  const afterFailure = {
    resumes: gateway.resumes,
    isExhausted: guard.isExhausted,
    reserveHeld: devNullFiles() - stdin,
    errors: linesSaying(ERROR, 'consumer gateway cannot listen again'),
    infos: linesSaying(INFO, 'open files free again').length,
  }
  await check()
  const afterRetry = {
    resumes: gateway.resumes,
    isExhausted: guard.isExhausted,
    reserveHeld: devNullFiles() - stdin,
    errors: linesSaying(ERROR, 'consumer gateway cannot listen again').length,
    infos: linesSaying(INFO, 'open files free again').length,
  }
  guard.stop()
  return { afterFailure, afterRetry }
}

/** stop(): the reserve is given back and no check runs after it. */
async function stop(): Promise<Record<string, unknown>> {
  const stdin = devNullFiles()
  const gateway = new RecordingSwitch()
  const guard = new OpenFilesGuard(RESERVE, gateway, log)
  const reserveHeldBeforeStop = devNullFiles() - stdin
  guard.stop()
  const reserveHeldAfterStop = devNullFiles() - stdin
  fill()
  for (let i = 0; i < 5; i++) await check()
  closeBallast(ballast.length)
  return { reserveHeldBeforeStop, reserveHeldAfterStop, pausesAfterStop: gateway.pauses, lines: lines.length }
}

const scenarios: Record<string, () => Promise<Record<string, unknown>>> = {
  episode,
  'failed-resume': failedResume,
  stop,
}

if (process.argv[1] === SELF) {
  const scenario = scenarios[process.argv[2] ?? '']
  if (!scenario) throw new Error(`no scenario ${process.argv[2]}: ${Object.keys(scenarios).join(', ')}`)
  mock.timers.enable({ apis: ['setInterval'] })
  process.stdout.write(`${JSON.stringify(await scenario())}\n`)
}
