import test from 'ava'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'
import { userRoom } from '../../src/redis/keys.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, errorBody, SECRET, startAdminApp, TOKENS, USER } from './harness.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const NOT_FOUND = errorBody(-32601, 'Method not found', 'METHOD_NOT_FOUND')

test('demo off (the default): /demo/, /demo/token, /demo/publish and the client files are 404', async t => {
  const h = await startAdminApp(t, server.url)
  for (const path of ['/demo', '/demo/', '/demo/token', '/demo/consumer.js']) {
    const answer = await call(`${h.base}${path}`)
    t.is(answer.status, 404, path)
    t.deepEqual(answer.json, NOT_FOUND)
  }
  const publish = await call(`${h.base}/demo/publish`, { token: TOKENS.consumer, body: { message: 'x' } })
  t.is(publish.status, 404)
  t.deepEqual(await h.roomLog(userRoom(USER)), [])
})

test('demo on: the page, the three client files, and a consumer token for a fresh random user', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { demo: true } })
  const redirect = await call(`${h.base}/demo`)
  t.is(redirect.status, 302)
  t.is(redirect.headers.get('location'), '/demo/')
  const page = await call(`${h.base}/demo/`)
  t.is(page.status, 200)
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/)
  // The SDK's bundle by default; snapper-consumer's three files, in this order, with ?client=snapper-consumer.
  t.regex(page.text, /await import\('\/sdk\/consumer\.js'\)/)
  t.regex(page.text, /\['jsonrpc\.js', 'engine\.io\.js', 'consumer\.js'\]/)

  const files = {
    'jsonrpc.js': /root\.jsonrpc = factory\(\)/,
    'engine.io.js': /webpackUniversalModuleDefinition/,
    'consumer.js': /root\.Consumer = factory\(root\.jsonrpc, root\.eio\)/,
  }
  for (const [file, marker] of Object.entries(files)) {
    const answer = await call(`${h.base}/demo/${file}`)
    t.is(answer.status, 200, file)
    t.regex(answer.headers.get('content-type') ?? '', /^application\/javascript/)
    t.regex(answer.text, marker)
  }
  t.is((await call(`${h.base}/demo/other.js`)).status, 404)

  const first = (await call(`${h.base}/demo/token`)).json as {
    token: string
    userId: string
    room: string
    gatewayPort: number
  }
  const second = (await call(`${h.base}/demo/token`)).json as { userId: string }
  t.not(first.userId, second.userId)
  t.is(first.room, `user${first.userId}`)
  t.is(first.gatewayPort, 7701)
  const verified = new Tokens([SECRET]).verifyConsumer(first.token)
  if (!verified.ok) return t.fail(verified.reason)
  t.is(verified.claims.userId, first.userId)
  t.regex(consumerIdOf(verified.claims), /^w\./)
})

test('/sdk/consumer.js: the SDK bundle as an ES module any origin may load, demo or not', async t => {
  const h = await startAdminApp(t, server.url)
  const bundle = await call(`${h.base}/sdk/consumer.js`)
  t.is(bundle.status, 200)
  t.regex(bundle.headers.get('content-type') ?? '', /^application\/javascript/)
  t.is(bundle.headers.get('access-control-allow-origin'), '*')
  t.regex(bundle.text, /export\{[^}]*\bConsumer\b/)
  t.is((await call(`${h.base}/sdk/consumer.js.map`)).status, 200)
  t.is((await call(`${h.base}/sdk/other.js`)).status, 404)
})

test('demo publish: only with the demo consumer token, only to its own user room', async t => {
  const h = await startAdminApp(t, server.url, { overrides: { demo: true } })
  const demo = (await call(`${h.base}/demo/token`)).json as { token: string; room: string }
  const sent = await call(`${h.base}/demo/publish`, {
    token: demo.token,
    body: { message: 'hi there', room: 'elsewhere' },
  })
  t.deepEqual(sent.json, { result: 1 })
  t.deepEqual(await h.roomLog(demo.room), ['hi there'])
  t.deepEqual(await h.roomLog('elsewhere'), [])

  const none = await call(`${h.base}/demo/publish`, { body: { message: 'x' } })
  t.is(none.status, 401)
  const producer = await call(`${h.base}/demo/publish`, { token: TOKENS.producer, body: { message: 'x' } })
  t.is(producer.status, 400)
  t.deepEqual(
    producer.json,
    errorBody(400, 'Token not allowed here', 'WRONG_ROLE', {
      reason: 'Error: Not a consumer token: userId (24 lowercase hex digits) is required',
    }),
  )
  const empty = await call(`${h.base}/demo/publish`, { token: demo.token, body: { message: '' } })
  t.is(empty.status, 400)
  t.deepEqual(empty.json, errorBody(-32602, 'Invalid params', 'INVALID_PARAMS'))
  t.deepEqual(await h.roomLog(demo.room), ['hi there'])
})

test('the demo option: off by default, SNAPPER_DEMO=1/true/yes turns it on, anything else is refused by name', t => {
  t.false(loadConfig().demo)
  for (const on of ['1', 'true', 'YES']) t.true(loadConfig({ env: { SNAPPER_DEMO: on } }).demo, on)
  for (const off of ['0', 'false', 'no']) t.false(loadConfig({ env: { SNAPPER_DEMO: off } }).demo, off)
  const error = t.throws(() => loadConfig({ env: { SNAPPER_DEMO: 'maybe' } }), { instanceOf: ConfigError })
  t.regex(error.message, /SNAPPER_DEMO \(demo\): expected true or false/)
})
