/**
 * The demo in a real browser: `snapper start --workers 0 --demo` (the real
 * CLI), Debian's Chromium driven by playwright-core. The page connects to the
 * gateway on another port with the SDK's bundle from /sdk/consumer.js (both
 * codecs, both transports), or with the published snapper-consumer browser build
 * (cross-origin polling with credentials, then the websocket upgrade), and
 * shows what its form publishes.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { chromium, type BrowserContext } from 'playwright-core'
import { startCli } from '../helpers/cli.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'

const CHROMIUM = '/usr/bin/chromium'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('demo: a browser consumer (SDK json on websocket, SDK msgpack on polling, snapper-consumer) connects, publishes from the form, and sees its messages', async t => {
  if (!existsSync(CHROMIUM))
    return t.fail(
      `Chromium is not installed at ${CHROMIUM}: run \`apt-get install -y chromium\` (CI installs it)`,
    )

  const cli = await startCli(t, {
    workers: 0,
    args: ['--demo'],
    env: {
      SNAPPER_REDIS: server.url,
      SNAPPER_REDIS_PREFIX: uniquePrefix(),
      SNAPPER_TOKEN_SECRETS: 'browser-demo-secret',
      SNAPPER_DRAIN_SPREAD_MS: '0',
    },
  })
  const userDataDir = mkdtempSync(join(tmpdir(), 'snapper-chromium-'))
  let browser: BrowserContext | undefined
  t.teardown(async () => {
    await browser?.close()
    rmSync(userDataDir, { recursive: true, force: true })
  })
  const base = `http://127.0.0.1:${cli.ports.admin}`

  // A fresh profile, removed at teardown.
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
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
  for (const variant of ['?codec=json', '?codec=msgpack&transport=polling', '?client=snapper-consumer']) {
    const page = await browser.newPage()
    const problems: string[] = []
    page.on('pageerror', err => problems.push(`page error: ${err.message}`))
    page.on('response', res => {
      if (res.status() >= 400) problems.push(`HTTP ${res.status()} ${res.url()}`)
    })
    page.on('console', message => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`)
    })

    await page.goto(`${base}/demo/${variant}`)
    const status = page.locator('#status')
    try {
      await status.filter({ hasText: /^connected$/ }).waitFor({ timeout: 10_000 })
    } catch (err) {
      throw new Error(
        `${variant}: the page did not connect: status "${await status.textContent()}"; ${problems.join('; ')}\n${cli.output()}`,
        { cause: err },
      )
    }

    const messages = ['hello from the browser', 'second <b>not html</b>']
    for (const message of messages) {
      await page.fill('#message', message)
      await page.click('#send')
      await page.locator('#messages li', { hasText: message }).waitFor({ timeout: 10_000 })
    }
    const items = page.locator('#messages li')
    t.deepEqual(await items.allTextContents(), messages, `${variant}: in order, once each, shown as text`)
    t.is(await page.locator('#messages b').count(), 0, 'never parsed as HTML')
    if (variant.startsWith('?codec')) {
      // The SDK hands out each message's room and its consecutive seq.
      const seqs = await items.evaluateAll(nodes =>
        nodes.map(node => (node as unknown as { dataset: { seq: string } }).dataset.seq),
      )
      t.deepEqual(seqs, ['1', '2'], variant)
    }
    t.is(await status.textContent(), 'connected')
    t.deepEqual(problems, [], variant)
    await page.close()
  }

  await browser.close()
  browser = undefined
  cli.signal('SIGTERM')
  t.is(await cli.exited, 0, cli.output())
})
