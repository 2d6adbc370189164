/**
 * What a bench run produced, and its three renderings: the console table,
 * the JSON file, and the dated section appended to bench/RESULTS.md.
 * Every number here was measured in this run; ratios compare targets
 * measured in this same run.
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs'
import { TARGET_LABELS, type TargetName } from '../servers/targets.js'
import type { Machine } from './proc.js'
import type { Check, Medians, MetricDef, Metrics } from './scenario.js'

export type Series = TargetName | 'noise'

export interface ScenarioResult {
  readonly name: string
  readonly title: string
  readonly targets: readonly TargetName[]
  readonly metrics: readonly MetricDef[]
  readonly headline: string
  /** Every run's metrics per target, in run order. */
  readonly runs: Partial<Record<Series, Metrics[]>>
  readonly medians: Medians
  readonly checks: readonly Check[]
  readonly notes: readonly string[]
  readonly errors: readonly string[]
}

export interface BenchResult {
  readonly command: string
  readonly date: string
  readonly machine: Machine
  /** One redis-server, or a cluster (--redis-cluster). */
  readonly redis?: string
  readonly loadAverage: number
  readonly workers: number
  readonly threads: number
  /** Generator processes the consumers ran in (--generators), if not threads. */
  readonly generators?: number
  readonly runs: number
  readonly smoke: boolean
  readonly scenarios: ScenarioResult[]
}

/** CPU columns every scenario gets (the measured window of each run). */
export const CPU_METRICS: readonly MetricDef[] = [
  { key: 'brokerCpuS', label: 'CPU broker', unit: 's', better: 'none', digits: 2 },
  { key: 'redisCpuS', label: 'CPU Redis', unit: 's', better: 'none', digits: 2 },
  { key: 'genCpuS', label: 'CPU load gen', unit: 's', better: 'none', digits: 2 },
  { key: 'kernelCpuS', label: 'of which kernel', unit: 's', better: 'none', digits: 2 },
  { key: 'windowS', label: 'window', unit: 's', better: 'none', digits: 2 },
  { key: 'cpuStallPct', label: 'CPU stall', unit: '%', better: 'none', digits: 0 },
]

export function median(values: readonly number[]): number {
  const sorted = [...values].filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function mediansOf(runs: Partial<Record<Series, Metrics[]>>): Medians {
  const medians: Medians = {}
  for (const [series, list] of Object.entries(runs) as [Series, Metrics[]][]) {
    if (list.length === 0) continue
    const keys = new Set(list.flatMap(metrics => Object.keys(metrics)))
    medians[series] = Object.fromEntries(
      [...keys].map(key => [key, median(list.map(metrics => metrics[key] ?? NaN))]),
    )
  }
  return medians
}

export function formatValue(value: number | undefined, metric: Pick<MetricDef, 'digits'>): string {
  if (value === undefined || !Number.isFinite(value)) return '–'
  const digits = metric.digits ?? 0
  return value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

const seriesLabel = (series: Series, baseline: TargetName): string =>
  series === 'noise' ? `${TARGET_LABELS[baseline]}, again (noise)` : TARGET_LABELS[series]

/** Rows of the table: one per series, then the ratio rows. Cells are strings. */
export function tableRows(result: ScenarioResult): { header: string[]; rows: string[][] } {
  const metrics = [...result.metrics, ...CPU_METRICS]
  const header = [
    '',
    ...metrics.map(metric =>
      metric.unit && metric.unit !== '/s' ? `${metric.label} (${metric.unit})` : metric.label,
    ),
  ]
  const baseline = result.targets[0]!
  const order: Series[] = [...result.targets, 'noise']
  const rows: string[][] = []
  for (const series of order) {
    const values = result.medians[series]
    if (!values) continue
    rows.push([
      seriesLabel(series, baseline),
      ...metrics.map(metric => formatValue(values[metric.key], metric)),
    ])
  }
  const ratio = (a: Metrics | undefined, b: Metrics | undefined, label: string): void => {
    if (!a || !b) return
    rows.push([
      label,
      ...metrics.map(metric => {
        const x = a[metric.key]
        const y = b[metric.key]
        if (
          metric.better === 'none' ||
          x === undefined ||
          y === undefined ||
          !Number.isFinite(x / y) ||
          y === 0
        )
          return ''
        return `${(x / y).toFixed(2)}×`
      }),
    ])
  }
  const snapper = result.medians.snapper
  if (baseline !== 'snapper') ratio(snapper, result.medians[baseline], `Snapper ÷ ${TARGET_LABELS[baseline]}`)
  if (result.targets.includes('uws') && baseline !== 'uws')
    ratio(snapper, result.medians.uws, 'Snapper ÷ uWS ceiling')
  if (result.targets.includes('floor')) ratio(snapper, result.medians.floor, 'Snapper ÷ uWS + Redis floor')
  if (result.targets.includes('scripts'))
    ratio(snapper, result.medians.scripts, "Snapper ÷ uWS + Snapper's Redis work floor")
  ratio(result.medians.noise, result.medians[baseline], `noise: ${TARGET_LABELS[baseline]} ÷ itself`)
  return { header, rows }
}

/** A fixed-width table for the terminal. */
export function consoleTable(result: ScenarioResult, runs: number): string {
  const { header, rows } = tableRows(result)
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map(row => row[i]!.length)))
  const line = (cells: string[]): string =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')
  const out = [`\n${result.name} — ${result.title} (median of ${runs})`, line(header), ...rows.map(line)]
  for (const check of result.checks)
    out.push(`  ${check.ok ? 'PASS' : 'FAIL'}  ${check.label}: ${check.detail}`)
  for (const error of result.errors) out.push(`  ERROR ${error}`)
  return out.join('\n')
}

function markdownTable(result: ScenarioResult): string {
  const { header, rows } = tableRows(result)
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|')
  return [
    `| ${header.map(escape).join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map(row => `| ${row.map(escape).join(' | ')} |`),
  ].join('\n')
}

export function machineLine(bench: BenchResult): string {
  const { machine } = bench
  return (
    `${machine.cores} cores (${machine.cpu}), ${machine.memoryGb} GB, Linux ${machine.kernel}, Node ${machine.node}, ` +
    `Redis ${machine.redis} (${bench.redis ?? 'one redis-server'}); no nginx (consumers connect straight to the gateway); the load generator ` +
    `(${bench.generators ? `${bench.generators} generator processes` : `${bench.threads} consumer threads`} + producers) runs on the same cores; ${bench.workers} server process(es) per target; ` +
    `load average ${bench.loadAverage} when the run started. CPU columns: seconds used in each run's measured ` +
    `window by the server processes, Redis and the load generator; CPU stall: the share of that window in which ` +
    `some task waited for a core (Linux PSI), from the bench itself or from other work on the machine.`
  )
}

/** The dated section for RESULTS.md. */
export function markdownSection(bench: BenchResult, chartFile: string | undefined): string {
  const parts = [
    `\n## ${bench.date} — \`${bench.command}\`\n`,
    `Machine: ${machineLine(bench)} Medians of ${bench.runs} run(s).\n`,
  ]
  if (chartFile) parts.push(`![results](${chartFile})\n`)
  for (const result of bench.scenarios) {
    parts.push(`### ${result.name} — ${result.title}\n`, markdownTable(result), '')
    for (const check of result.checks)
      parts.push(`- ${check.ok ? '✅' : '❌'} ${check.label}: ${check.detail}`)
    for (const note of result.notes) parts.push(`- note: ${note}`)
    for (const error of result.errors) parts.push(`- error: ${error}`)
    parts.push('')
  }
  return parts.join('\n')
}

export function writeJson(path: string, bench: BenchResult): void {
  writeFileSync(path, `${JSON.stringify(bench, null, 2)}\n`)
}

export function appendResults(path: string, section: string): void {
  if (!existsSync(path))
    writeFileSync(
      path,
      '# Bench results\n\nEach dated section is one `npm run bench` run, appended by the tool itself: the command, the date, ' +
        'the machine, medians of the runs, and ratios against the peers measured in the same run.\n',
    )
  appendFileSync(path, section)
}
