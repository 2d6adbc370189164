/**
 * The bench end to end, in seconds (`--smoke`: tiny counts, one run): every
 * scenario against every target it has (Snapper, Socket.IO + redis-adapter,
 * bare uWS) runs, nothing is lost or delivered twice anywhere, and the JSON
 * it writes has every number, so the suite cannot rot unnoticed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { BenchResult } from '../../bench/lib/report.js'
import { SCENARIO_NAMES } from '../../bench/scenarios/index.js'
import { runBench } from '../helpers/bench.js'

test('npm run bench -- --smoke: every scenario and target, zero loss', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'snapper-bench-smoke-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const json = join(dir, 'smoke.json')
  const { code, output } = await runBench(['--smoke', '--quiet', '--json', json])
  t.is(code, 0, output)

  const bench = JSON.parse(readFileSync(json, 'utf8')) as BenchResult
  t.true(bench.smoke)
  t.deepEqual(
    bench.scenarios.map(s => s.name),
    [...SCENARIO_NAMES],
  )
  for (const scenario of bench.scenarios) {
    t.deepEqual(scenario.errors, [], scenario.name)
    for (const target of scenario.targets) {
      const metrics = scenario.medians[target]
      t.truthy(metrics, `${scenario.name}: ${target} ran`)
      if (!metrics) continue
      for (const metric of scenario.metrics)
        t.true(Number.isFinite(metrics[metric.key]), `${scenario.name} ${target} ${metric.key}`)
      if ('lost' in metrics) t.is(metrics.lost, 0, `${scenario.name} ${target} lost nothing`)
      if ('dups' in metrics) t.is(metrics.dups, 0, `${scenario.name} ${target} delivered nothing twice`)
    }
    for (const check of scenario.checks) t.true(check.ok, `${check.label}: ${check.detail}`)
  }
})
