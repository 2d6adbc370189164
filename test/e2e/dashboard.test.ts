/**
 * The operator dashboard in Chromium against `snapper start --workers 2` (the
 * real CLI): under load from real consumers (engine.io-client 6) and a real
 * producer (snapper-producer), the charts move, the figures match what the
 * test did, and the tools answer. Screenshots go to artifacts/ (git-ignored)
 * for people to look at.
 */
import test from 'ava'
import Producer from 'snapper-producer'
import { Tokens } from '../../src/auth/token.js'
import { userRoom } from '../../src/redis/keys.js'
import { call, connectProducer, newUserId } from '../helpers/broker.js'
import { eventually, pause } from '../helpers/eventually.js'
import { openPage, screenshot } from '../helpers/chromium.js'
import { startCliOn } from '../helpers/cli.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const SECRET = 'dashboard-test-secret-of-32-bytes-at-least'
const tokens = new Tokens([SECRET])
const CONSUMERS = 12

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

/** The lines of a chart: their `d` is what a person sees move. */
const linesOf = (svgId: string): string => `#${svgId} path.line`

test('dashboard: charts move under load, the figures and tables are right, the tools answer', async t => {
  const cli = await startCliOn(t, server.url, SECRET)
  const users = Array.from({ length: CONSUMERS }, () => newUserId())
  const consumers: TestConsumer[] = users.map((userId, i) =>
    connectConsumer('v4 websocket', cli.ports.gateway + (i % 2), tokens.sign({ userId, source: 'web' })),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  await Promise.all(consumers.map(consumer => consumer.opened()))
  const producer: Producer = await connectProducer(t, cli.ports.producer, SECRET)

  const { page, problems } = await openPage(t, { width: 1360, height: 900 })
  await page.goto(`http://127.0.0.1:${cli.ports.admin}/?token=${tokens.sign({ name: 'snapper' })}`)
  await page.locator('#view').waitFor({ state: 'visible', timeout: 10_000 })
  t.false(page.url().includes('token='), 'the token left the address bar')
  await page.locator('#kpi-online', { hasText: String(CONSUMERS) }).waitFor({ timeout: 15_000 })

  // Load: every consumer's own room, 20 rounds a second.
  let sent = 0
  let loading = true
  const load = (async () => {
    while (loading) {
      for (const userId of users) producer.sendMessage(userRoom(userId), JSON.stringify({ n: sent++ }))
      await pause(50) // traffic spaced out
    }
  })()
  t.teardown(() => {
    loading = false
  })

  const positive = async (id: string): Promise<number> => {
    const handle = page.locator(`#${id}`)
    await page.waitForFunction(
      element => Number((element?.textContent ?? '').replace(/[^0-9.]/g, '')) > 0,
      await handle.elementHandle(),
      { timeout: 15_000 },
    )
    return Number(((await handle.textContent()) ?? '').replace(/[^0-9.]/g, ''))
  }
  const deliveredPerSec = await positive('kpi-delivered')
  t.true(deliveredPerSec > 0)
  await positive('kpi-published')
  await page.locator('#kpi-p50').filter({ hasText: /\d/ }).waitFor({ timeout: 15_000 })
  const before = await page
    .locator(linesOf('chart-rate'))
    .evaluateAll(paths => paths.map(p => p.getAttribute('d')))
  await page.waitForTimeout(2500)
  const after = await page
    .locator(linesOf('chart-rate'))
    .evaluateAll(paths => paths.map(p => p.getAttribute('d')))
  t.is(after.length, 2, 'published and delivered lines')
  t.notDeepEqual(after, before, 'the lines moved')
  t.is(await page.locator(linesOf('chart-latency')).count(), 2, 'p50 and p99 lines')
  t.is(await page.locator(linesOf('chart-online')).count(), 1)
  await screenshot(page, 'dashboard-under-load')

  // Hover readout on the rate chart.
  const box = (await page.locator('#chart-rate').boundingBox())!
  await page.mouse.move(box.x + box.width - 40, box.y + box.height / 2)
  t.regex((await page.locator('#chart-rate .readout').textContent()) ?? '', /delivered\/s: [\d,]+/)

  loading = false
  await load
  // Everything sent is delivered (the consumers ack), and the totals say so.
  await Promise.all(consumers.map((consumer, i) => consumer.waitFor(messagesFor(i, sent, CONSUMERS))))

  // Tables: two workers, two nodes alive, each holding its consumers.
  t.is(await page.locator('#workers tr').count(), 2)
  t.is(await page.locator('#nodes tr', { hasText: 'alive' }).count(), 2)

  // Presence of one user: its one web consumer, live.
  await page.fill('#presence-user', users[0]!)
  await page.click('#presence button')
  await page.locator('#presence-result td', { hasText: consumers[0]!.id! }).waitFor()
  t.regex((await page.locator('#presence-result').textContent()) ?? '', /web.*live/)

  // Room view of that user's room.
  await page.fill('#room-name', userRoom(users[0]!))
  await page.click('#room button')
  await page.locator('#room-result td', { hasText: 'last sequence' }).waitFor()
  const roomText = (await page.locator('#room-result').textContent()) ?? ''
  t.regex(roomText, new RegExp(`messages in the log${consumers[0]!.messages.length}`))

  // Publish a tracked message from the form; its receipt names the consumer that acked it.
  await page.fill('#publish-room', userRoom(users[0]!))
  await page.fill('#publish-message', 'from the dashboard')
  await page.check('#publish-track')
  await page.click('#publish button')
  await page.locator('#publish-result td', { hasText: /\./ }).waitFor()
  await eventually(() => consumers[0]!.messages.includes('from the dashboard'))
  t.is(consumers[0]!.messages.at(-1), 'from the dashboard')
  t.not(await page.inputValue('#receipt-id'), '', 'the id went to the receipt tool')
  await page.click('#receipt button')
  await page.locator('#receipt-result td', { hasText: consumers[0]!.id! }).waitFor({ timeout: 5000 })
  await screenshot(page, 'dashboard-tools')

  // TCP track and receipt too, as the SDK will call them.
  const tracked = (await call(producer.request('track', [userRoom(users[1]!), 'tcp tracked']))) as {
    id: string
  }
  await eventually(() => consumers[1]!.messages.includes('tcp tracked'), { what: 'the tracked message' })
  const acked = await eventually(
    async () => {
      const receipt = (await call(producer.request('receipt', [tracked.id]))) as {
        acked: { consumerId: string }[]
      }
      return receipt.acked.length > 0 && receipt.acked.map(ack => ack.consumerId)
    },
    { timeoutMs: 2000, what: 'the receipt of the TCP track' },
  )
  t.deepEqual(acked, [consumers[1]!.id])
  t.deepEqual(problems, [])
})

/** How many messages consumer i got when `sent` were sent round-robin over `count` consumers. */
function messagesFor(i: number, sent: number, count: number): number {
  return Math.floor(sent / count) + (i < sent % count ? 1 : 0)
}
