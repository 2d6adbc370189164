import { readFileSync } from 'node:fs'

/** The dashboard's files, at the package root next to src/ and dist/ (like lua/). */
export const DASHBOARD_DIR = new URL('../../../../web/dashboard/', import.meta.url)

export interface Asset {
  readonly type: string
  readonly body: Buffer
}

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'charts.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
}

/**
 * Reads the dashboard once at start-up: plain HTML, CSS and ES modules, no
 * build step and nothing fetched from elsewhere at run time (the charts are
 * our own SVG, web/dashboard/charts.js).
 */
export function loadDashboard(): ReadonlyMap<string, Asset> {
  const assets = new Map<string, Asset>()
  for (const [file, type] of Object.entries(TYPES))
    assets.set(file, { type, body: readFileSync(new URL(file, DASHBOARD_DIR)) })
  return assets
}
