import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import { chromium, type BrowserContext, type Page } from 'playwright-core'

/** Debian's Chromium (`apt-get install -y chromium`), driven by playwright-core. */
export const CHROMIUM = '/usr/bin/chromium'

/** Screenshots and other files a test leaves for people to look at (git-ignored). */
export const ARTIFACTS_DIR = fileURLToPath(new URL('../../../artifacts/', import.meta.url))

/**
 * A headless Chromium with a fresh profile, closed (profile removed) at the
 * test's end; throws if Chromium is not installed. Not under the watchdog:
 * it ends by itself when the pipe from this process closes (watchdog.test.ts).
 */
export async function launchChromium(
  t: ExecutionContext,
  viewport: { width: number; height: number } = { width: 1280, height: 800 },
): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: run \`apt-get install -y chromium\` (CI installs it)`,
    )
  const userDataDir = mkdtempSync(join(tmpdir(), 'snapper-chromium-'))
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    viewport,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  t.teardown(async () => {
    await browser.close()
    rmSync(userDataDir, { recursive: true, force: true })
  })
  return browser
}

/** What goes wrong on a page, as it happens: page errors, console errors, HTTP responses ≥ 400. */
export function watchPage(page: Page): string[] {
  const problems: string[] = []
  page.on('pageerror', err => problems.push(`page error: ${err.message}`))
  page.on('response', res => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()} ${res.url()}`)
  })
  page.on('console', message => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`)
  })
  return problems
}

/** One page in a fresh Chromium, and what goes wrong on it (see watchPage). */
export async function openPage(
  t: ExecutionContext,
  viewport?: { width: number; height: number },
): Promise<{ page: Page; problems: string[] }> {
  const page = await (await launchChromium(t, viewport)).newPage()
  return { page, problems: watchPage(page) }
}

/** Saves a full-page screenshot as artifacts/<name>.png; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true })
  const path = join(ARTIFACTS_DIR, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}
