/**
 * The dashboard's server side: the page and its files (no CDN, a strict CSP),
 * the operator endpoints it polls, and the per-second series it charts. The
 * page itself, in Chromium under load, is test/e2e/dashboard.test.ts.
 */
import test from 'ava'
import { LiveSeries, type ClusterSample, type SeriesPoint } from '../../src/admin/live-series.js'
import { pause } from '../helpers/eventually.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, errorBody, startAdminApp, TOKENS, USER } from './harness.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('GET / is the page; its files come from the admin app itself, under a CSP that allows nothing else', async t => {
  const h = await startAdminApp(t, server.url)
  const page = await call(`${h.base}/`)
  t.is(page.status, 200)
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/)
  const csp = page.headers.get('content-security-policy') ?? ''
  t.regex(csp, /default-src 'self'/)
  t.regex(csp, /script-src 'self'/)
  t.regex(csp, /frame-ancestors 'none'/)
  const linked = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map(match => match[1]!)
  t.deepEqual(linked.sort(), ['/dashboard/app.js', '/dashboard/style.css', 'data:,'])
  for (const file of ['app.js', 'charts.js', 'style.css']) {
    const asset = await call(`${h.base}/dashboard/${file}`)
    t.is(asset.status, 200, file)
    t.regex(
      asset.headers.get('content-type') ?? '',
      file.endsWith('.js') ? /^text\/javascript/ : /^text\/css/,
    )
    t.notRegex(asset.text, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${file} fetches nothing from elsewhere`)
  }
  t.is((await call(`${h.base}/dashboard/nothing.js`)).status, 404)
  t.is((await call(`${h.base}/dashboard/index.html`)).status, 404)
})

test('the operator endpoints: 401 without a token, 400 with another role', async t => {
  const h = await startAdminApp(t, server.url)
  for (const path of ['/dashboard/series', `/dashboard/users/${USER}`, '/dashboard/rooms/r']) {
    t.is((await call(`${h.base}${path}`)).status, 401, path)
    t.is((await call(`${h.base}${path}`, { token: TOKENS.producer })).status, 400, path)
    t.is((await call(`${h.base}${path}`, { token: TOKENS.consumer })).status, 400, path)
    t.is((await call(`${h.base}${path}`, { token: TOKENS.operator })).status, 200, path)
  }
})

test('room view: log length, last sequence and when; presence: a user with no live connection', async t => {
  const h = await startAdminApp(t, server.url)
  const empty = await call(`${h.base}/dashboard/rooms/projects%2F1`, { token: TOKENS.operator })
  t.like(empty.json, { room: 'projects/1', length: 0, lastSeq: 0, lastPublishedAt: null })
  const before = Date.now()
  await h.core.producerApi.publish([
    ['projects/1', 'a'],
    ['projects/1', 'b'],
  ])
  const room = await call(`${h.base}/dashboard/rooms/projects%2F1`, { token: TOKENS.operator })
  const body = room.json as { length: number; lastSeq: number; lastPublishedAt: number }
  t.like(body, { length: 2, lastSeq: 2 })
  t.true(body.lastPublishedAt >= before - 1000 && body.lastPublishedAt <= Date.now() + 1000)
  const presence = await call(`${h.base}/dashboard/users/${USER}`, { token: TOKENS.operator })
  t.deepEqual(presence.json, { userId: USER, consumers: [] })
  const bad = await call(`${h.base}/dashboard/rooms/${'x'.repeat(2000)}`, { token: TOKENS.operator })
  t.deepEqual(bad.json, errorBody(-32602, 'Invalid params', 'INVALID_PARAMS'))
})

test('series: points after `since`, with the cluster totals turned into rates', async t => {
  const h = await startAdminApp(t, server.url)
  await h.series.sample()
  await h.core.producerApi.publish([['r', 'x']])
  await h.core.stats.flush()
  await pause(50) // a rate needs time to pass
  await h.series.sample()
  const all = await call(`${h.base}/dashboard/series`, { token: TOKENS.operator })
  const { intervalMs, points } = all.json as {
    intervalMs: number
    points: { t: number; published: number }[]
  }
  t.is(intervalMs, 1000)
  t.is(points.length, 2)
  t.true(points[1]!.published > 0, 'one message in 50 ms is a rate of about 20/s')
  const later = await call(`${h.base}/dashboard/series?since=${points[0]!.t}`, { token: TOKENS.operator })
  t.deepEqual((later.json as { points: unknown[] }).points, [points[1]])
})

test('LiveSeries: rates over a few intervals, latency quantiles from the nodes’ new counts, bounded memory', async t => {
  let sample: ClusterSample = { published: 0, delivered: 0, online: 3, latency: new Map([['n1', [5, 0]]]) }
  const series = new LiveSeries(async () => sample, {
    intervalMs: 1000,
    windowSec: 5,
    onError: err => t.fail(String(err)),
  })
  await series.sample() // the baseline: n1's counts so far are history, not this second's
  t.like(series.since(0)[0], { published: 0, online: 3, p50: null, p99: null })
  await pause(100) // a rate needs time to pass
  // 10 in the first bucket (≤ 5 ms) for n1, and n2 is new: all of its counts are new.
  sample = {
    published: 10,
    delivered: 20,
    online: 4,
    latency: new Map([
      ['n1', [15, 0]],
      ['n2', [0, 10]],
    ]),
  }
  await series.sample()
  const [first, point] = series.since(0) as [SeriesPoint, SeriesPoint]
  const seconds = (point.t - first.t) / 1000 // ~0.1 s, more on a loaded machine
  t.true(seconds >= 0.1)
  t.is(point.published, Math.round(10 / seconds), `10 in ${seconds} s`)
  t.is(point.delivered, Math.round(20 / seconds))
  t.is(point.online, 4)
  t.is(point.p50, 5, 'half are ≤ 5 ms: the first bound')
  t.true(point.p99! > 5 && point.p99! <= 10, 'the rest are in (5 ms, 10 ms]')
  // A node that restarted (its counts went down) counts from zero again.
  sample = { ...sample, latency: new Map([['n1', [1, 0]]]) }
  await series.sample()
  for (let i = 0; i < 10; i++) await series.sample()
  t.is(series.since(0).length, 5, 'windowSec / intervalMs points at most')
})
