/**
 * The results as an SVG, made with vega-lite (spec) and vega (headless
 * render, `View.toSVG()`): one panel per scenario with its headline metric
 * per target, medians, value labels on the bars.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import * as vega from 'vega'
import * as vl from 'vega-lite'
import { TARGET_LABELS } from '../servers/targets.js'
import type { BenchResult } from './report.js'

interface Row {
  readonly panel: string
  readonly series: string
  readonly value: number
}

function rowsOf(bench: BenchResult): Row[] {
  const rows: Row[] = []
  for (const result of bench.scenarios) {
    if (result.name === 'redis-work') {
      const snapper = result.medians.snapper
      if (!snapper) continue
      for (const size of ['10', '100', '1000'])
        rows.push({
          panel: 'redis-work: Redis calls per message',
          series: `room of ${size}`,
          value: snapper[`callsPerMessage${size}`] ?? NaN,
        })
      continue
    }
    const metric = result.metrics.find(m => m.key === result.headline)!
    const direction = metric.better === 'higher' ? 'higher is better' : 'lower is better'
    const panel = `${result.name}: ${metric.label}${metric.unit && metric.unit !== '/s' ? ` (${metric.unit})` : ''}, ${direction}`
    for (const target of result.targets) {
      const value = result.medians[target]?.[result.headline]
      if (value !== undefined) rows.push({ panel, series: TARGET_LABELS[target], value })
    }
  }
  return rows.filter(row => Number.isFinite(row.value))
}

export async function renderChart(bench: BenchResult): Promise<string> {
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Snapper bench, ${bench.date}`,
      subtitle: `median of ${bench.runs}; ${bench.machine.cores} cores, ${bench.machine.cpu}`,
    },
    data: { values: rowsOf(bench) as unknown as Record<string, unknown>[] },
    facet: { field: 'panel', type: 'nominal', title: null, header: { labelFontSize: 11, labelLimit: 0 } },
    columns: 3,
    spec: {
      width: 260,
      height: 150,
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            y: { field: 'series', type: 'nominal', title: null, sort: null, axis: { labelLimit: 0 } },
            x: { field: 'value', type: 'quantitative', title: null },
            color: { field: 'series', type: 'nominal', legend: null },
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 3 },
          encoding: {
            y: { field: 'series', type: 'nominal', sort: null },
            x: { field: 'value', type: 'quantitative' },
            text: { field: 'value', type: 'quantitative', format: ',.4~r' },
          },
        },
      ],
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
  }
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' })
  const svg = await view.toSVG()
  view.finalize()
  return svg
}

// `node dist/bench/lib/chart.js results.json out.svg`: draws the chart of a run's JSON again.
if (process.argv[1]?.endsWith('chart.js') && process.argv[2] && process.argv[3]) {
  const bench = JSON.parse(readFileSync(process.argv[2], 'utf8')) as BenchResult
  writeFileSync(process.argv[3], await renderChart(bench))
}
