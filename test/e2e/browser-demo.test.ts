/**
 * The demo in a real browser: `snapper start --workers 0 --demo` (the real
 * CLI), Debian's Chromium driven by playwright-core. The page connects to the
 * gateway on another port with the SDK's bundle from /sdk/consumer.js (both
 * codecs, both transports, and polling that upgrades to a websocket), or with the published snapper-consumer browser build
 * (cross-origin polling with credentials, then the websocket upgrade), and
 * shows what its form publishes.
 */
import test from 'ava'
import { launchChromium, watchPage } from '../helpers/chromium.js'
import { startCli } from '../helpers/cli.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('demo: a browser consumer (SDK json on websocket, SDK msgpack on polling, SDK polling then websocket, snapper-consumer) connects, publishes from the form, and sees its messages', async t => {
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
  const base = `http://127.0.0.1:${cli.ports.admin}`
  const browser = await launchChromium(t)
  // With the SDK, the transport its session ends up on: a session that starts on polling upgrades.
  const variants: { query: string; transport?: string }[] = [
    { query: '?codec=json', transport: 'websocket' },
    { query: '?codec=msgpack&transport=polling', transport: 'polling' },
    { query: '?codec=json&transport=upgrade', transport: 'websocket' },
    { query: '?client=snapper-consumer' },
  ]
  for (const { query: variant, transport } of variants) {
    const page = await browser.newPage()
    const problems = watchPage(page)

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

    if (transport) await page.locator(`#status[data-transport="${transport}"]`).waitFor({ timeout: 10_000 })
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
    if (transport) t.is(await status.getAttribute('data-transport'), transport, variant)
    t.deepEqual(problems, [], variant)
    await page.close()
  }

  await browser.close()
  cli.signal('SIGTERM')
  t.is(await cli.exited, 0, cli.output())
})
