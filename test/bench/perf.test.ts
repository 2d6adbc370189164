/**
 * `--perf DIR`: each measured window of each run is recorded on the CPU (the
 * servers and Redis) and summarised, with the servers' JavaScript named.
 * Needs Linux perf that may record here; where it may not, the bench refuses
 * the option with what to install, and that is what is tested instead.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { assertPerf } from '../../bench/lib/perf.js'
import { runBench } from '../helpers/bench.js'

function perfMissing(): string | undefined {
  try {
    assertPerf()
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

test('npm run bench -- unicast --perf DIR: one recording and one summary per run, Redis in it, the JavaScript named', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'snapper-bench-perf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const missing = perfMissing()
  const { code, output } = await runBench([
    'unicast',
    '--smoke',
    '--quiet',
    '--targets',
    'snapper',
    '--perf',
    dir,
  ])
  if (missing) {
    t.not(code, 0)
    t.true(output.includes(missing), output)
    return
  }
  t.is(code, 0, output)
  const files = readdirSync(dir).sort()
  t.deepEqual(
    files.map(file => file.replace(/^unicast-snapper-\d{4}-\d\d-\d\dT\d+Z/, '')),
    ['.data', '.txt'],
  )
  const summary = readFileSync(join(dir, files[1]!), 'utf8')
  const header = spawnSync('perf', ['report', '--header-only', '-i', join(dir, files[0]!)], {
    encoding: 'utf8',
  })
  t.regex(header.stdout, /cmdline : .* -p \d+,\d+/, 'the server process and Redis, recorded together')
  // Each server thread is listed by its id; the main thread's id is its process's.
  const pids = new Set([...summary.matchAll(/(\d+):node\s/g)].map(match => match[1]!))
  t.true(pids.size > 0, summary)
  const maps = [...pids].map(pid => `/tmp/perf-${pid}.map`).filter(file => existsSync(file))
  t.teardown(() => maps.forEach(file => rmSync(file, { force: true })))
  t.is(maps.length, 1, 'one server process, its JavaScript mapped for perf')
  t.regex(
    readFileSync(maps[0]!, 'utf8'),
    /JS:\S* file:\/\/\S+\/src\/broker\/\S+\.js/,
    "Snapper's functions have names",
  )
})
