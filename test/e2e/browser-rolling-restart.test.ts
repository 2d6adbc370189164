/**
 * What an app's users see in a real browser during a rolling restart: one
 * Chromium page (served from a loopback origin of its own, so cross-origin
 * like an app's) runs the SDK's browser bundle and snapper-consumer@1.3.6's
 * browser build, each on websocket and on polling only, through the shipped
 * nginx.conf (ip_hash) to `snapper start --workers 2`, while a producer
 * publishes to each user's own room and to a room they share.
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { dirname } from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { userRoom } from '../../src/redis/keys.js'
import { call, connectProducer, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { launchChromium, watchPage } from '../helpers/chromium.js'
import { startCliOn } from '../helpers/cli.js'
import { eventually, pause } from '../helpers/eventually.js'
import { startNginx } from '../helpers/nginx.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])
const require = createRequire(import.meta.url)

/** snapper-consumer reconnects 11-60 s after a close by default; an app may set its public reconnectionTime. */
const LEGACY_RECONNECT_MS = 1000

/** The page's clients: the SDK (websocket first, or polling only) and snapper-consumer (polling then the upgrade, or polling only). */
const CLIENTS = [
  { name: 'sdk', sdk: true, transports: ['websocket', 'polling'] },
  { name: 'sdk-polling', sdk: true, transports: ['polling'] },
  { name: 'legacy', sdk: false, transports: ['polling', 'websocket'] },
  { name: 'legacy-polling', sdk: false, transports: ['polling'] },
] as const

/**
 * Each client as an app would use it, everything it hands the app recorded
 * in window.seen[name]: messages by room (snapper-consumer's by the text's
 * `<room>|` prefix, as it has no room), the SDK's seqs, gaps, state events.
 */
const PAGE = `<!doctype html>
<meta charset="utf-8"><link rel="icon" href="data:,"><title>rolling restart</title>
<script src="jsonrpc.js"></script><script src="engine.io.js"></script><script src="consumer.js"></script>
<script type="module">
import { Consumer } from './sdk.js'
const { gateway, clients, legacyReconnectMs } = JSON.parse(decodeURIComponent(location.hash.slice(1)))
const seen = window.seen = {}
const push = (by, key, value) => (by[key] ??= []).push(value)
for (const client of clients) {
  const log = seen[client.name] = { id: null, rooms: {}, seqs: {}, gaps: [], states: [], errors: [] }
  if (client.sdk) {
    const sdk = new Consumer(gateway, { token: client.token, transports: client.transports })
    sdk.on('message', (message, meta) => { push(log.rooms, meta.room, message); push(log.seqs, meta.room, meta.seq) })
    sdk.on('gap', gap => log.gaps.push(gap))
    sdk.on('state', (state, details) => {
      log.states.push({ state, at: Date.now(), transport: details.transport, reason: details.reason, retryInMs: details.retryInMs })
      if (state === 'open') log.id = sdk.id
    })
    sdk.on('error', err => log.errors.push(String(err)))
    sdk.connect().catch(err => log.errors.push(String(err)))
  } else {
    const legacy = new window.Consumer()
    legacy.onopen = () => {
      legacy.reconnectionTime = legacyReconnectMs
      log.id = legacy.consumerId
      log.states.push({ state: 'open', at: Date.now(), transport: legacy.connection.transport.name })
    }
    // It reports the end of a connection as an error ("transport close"), then reconnects.
    legacy.onerror = err => log.states.push({ state: 'error', at: Date.now(), reason: String(err && (err.message || err)) })
    legacy.onmessage = event => {
      if (event.type === 'request' && event.data.method === 'publish')
        for (const message of event.data.params) push(log.rooms, message.split('|')[0], message)
      else if (event.type === 'notification' && event.data.method === 'gap') log.gaps.push(event.data.params)
    }
    legacy._join = () => {} // the test's producer joins rooms
    legacy.connect(gateway, { path: '/websocket', token: client.token, transports: client.transports })
  }
}
</script>`

/** `room|0` … `room|9`, `room|5` … as "0-9, 5-…": where a list of messages went wrong. */
function runs(messages: readonly string[]): string {
  const numbers = messages.map(message => Number(message.split('|')[1]))
  const ranges: string[] = []
  numbers.forEach((n, i) => {
    if (i > 0 && n === numbers[i - 1]! + 1) return
    if (i > 0) ranges[ranges.length - 1] += `-${numbers[i - 1]}`
    ranges.push(String(n))
  })
  if (numbers.length > 0) ranges[ranges.length - 1] += `-${numbers.at(-1)}`
  return ranges.join(', ')
}

interface ClientLog {
  id: string | null
  rooms: Record<string, string[]>
  seqs: Record<string, number[]>
  gaps: unknown[]
  states: { state: string; at: number; transport?: string; reason?: string; retryInMs?: number }[]
  errors: string[]
}

/** Serves the page and its scripts on a loopback port (Chromium lets only loopback pages reach loopback servers). */
async function servePage(t: ExecutionContext): Promise<string> {
  const consumer = require.resolve('snapper-consumer')
  const fromConsumer = createRequire(consumer)
  const js = 'application/javascript'
  const files = new Map<string, { type: string; body: string | Buffer }>([
    ['index.html', { type: 'text/html', body: PAGE }],
    ['sdk.js', { type: js, body: readFileSync(new URL('../../sdk/consumer.js', import.meta.url)) }],
    ['consumer.js', { type: js, body: readFileSync(consumer) }],
    ['jsonrpc.js', { type: js, body: readFileSync(fromConsumer.resolve('jsonrpc-lite/jsonrpc.js')) }],
    [
      'engine.io.js',
      {
        type: js,
        body: readFileSync(`${dirname(fromConsumer.resolve('engine.io-client/package.json'))}/engine.io.js`),
      },
    ],
  ])
  const http = createServer((req, res) => {
    const file = files.get(new URL(req.url ?? '/', 'http://page').pathname.slice(1))
    if (!file) return res.writeHead(404).end()
    res.writeHead(200, { 'Content-Type': file.type }).end(file.body)
  })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(() => new Promise<void>(resolve => http.close(() => resolve())))
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
}

test('browser, rolling restart through nginx: the SDK and snapper-consumer, on websocket and on polling, get every message once and in order, and are back soon after one close', async t => {
  const cli = await startCliOn(t, server.url, TEST_SECRET, 2, {
    SNAPPER_LOG_LEVEL: 'info',
    SNAPPER_DRAIN_SPREAD_MS: '300',
  })
  const nginx = await startNginx(cli.ports.gateway, 2)
  t.teardown(() => nginx.stop())
  const origin = await servePage(t)
  const page = await (await launchChromium(t)).newPage()
  const problems = watchPage(page)

  const users = CLIENTS.map(() => newUserId())
  const clients = CLIENTS.map((client, i) => ({ ...client, token: tokens.sign({ userId: users[i]! }) }))
  const config = {
    gateway: `http://127.0.0.1:${nginx.port}`,
    clients,
    legacyReconnectMs: LEGACY_RECONNECT_MS,
  }
  await page.goto(`${origin}/index.html#${encodeURIComponent(JSON.stringify(config))}`)
  const read = () => page.evaluate(() => (globalThis as unknown as { seen: Record<string, ClientLog> }).seen)
  const ids = await eventually(
    async () => {
      const seen = await read()
      const opened = CLIENTS.map(client => seen?.[client.name]?.id)
      return opened.every(Boolean) ? (opened as string[]) : undefined
    },
    { what: () => `every client to open: ${problems.join('; ')}`, timeoutMs: 15_000, everyMs: 100 },
  )
  const producer = await connectProducer(t, cli.ports.producer)
  for (const id of ids) await call(producer.joinRoom('shared', id))

  // Each user's own room and the shared one, ~500 messages/s in all, through the whole restart.
  const rooms = [...users.map(userRoom), 'shared']
  let sent = 0
  let stop = false
  const publishing = (async () => {
    while (!stop) {
      for (const room of rooms) producer.sendMessage(room, `${room}|${sent}`)
      sent++
      await pause(10)
    }
  })()
  await pause(1000)
  const statsToken = tokens.sign({ name: 'snapper' })
  const before = await cli.workerPids(statsToken)
  const restartAt = Date.now()
  cli.signal('SIGHUP')
  await eventually(() => cli.output().includes('rolling restart done'), {
    what: () => `the rolling restart:\n${cli.output()}`,
    timeoutMs: 30_000,
    everyMs: 100,
  })
  const restartMs = Date.now() - restartAt
  await pause(1000)
  stop = true
  await publishing

  const expected = (room: string) => Array.from({ length: sent }, (_, i) => `${room}|${i}`)
  const count = (log: ClientLog | undefined, room: string) => log?.rooms[room]?.length ?? 0
  const ownRoom = (i: number) => userRoom(users[i]!)
  const isComplete = (seen: Record<string, ClientLog>) =>
    CLIENTS.every(
      (client, i) =>
        count(seen[client.name], ownRoom(i)) >= sent && count(seen[client.name], 'shared') >= sent,
    )
  let last: Record<string, ClientLog> = {}
  const counts = () =>
    CLIENTS.map((client, i) => {
      const log = last[client.name]
      return `${client.name} ${count(log, ownRoom(i))}+${count(log, 'shared')} ${JSON.stringify(log?.states)} ${JSON.stringify(log?.errors)}`
    }).join('\n')
  await eventually(async () => isComplete((last = await read())), {
    what: () => `every message to arrive (${sent} per room):\n${counts()}\n${problems.join('\n')}`,
    timeoutMs: 20_000,
    everyMs: 100,
  })
  await pause(500) // for anything sent twice
  const seen = await read()

  const after = await cli.workerPids(statsToken)
  t.false(
    after.some(pid => before.includes(pid)),
    'both workers were replaced',
  )
  const summary: string[] = [`${sent} messages per room, restart ${restartMs} ms`]
  CLIENTS.forEach((client, i) => {
    const log = seen[client.name]!
    for (const room of [ownRoom(i), 'shared']) {
      t.deepEqual(
        log.rooms[room],
        expected(room),
        `${client.name}, ${room}: each message once, in order; got ${runs(log.rooms[room] ?? [])}`,
      )
      if (client.sdk)
        t.deepEqual(
          log.seqs[room],
          Array.from({ length: sent }, (_, n) => n + 1),
          `${client.name}, ${room}: consecutive seqs from 1`,
        )
    }
    t.deepEqual(log.gaps, [], `${client.name}: no gap`)
    t.deepEqual(log.errors, [], `${client.name}: no error event`)
    // Every session that ended was open again soon after.
    const outages: number[] = []
    let downAt: number | undefined
    for (const state of log.states) {
      if (state.state === 'open') {
        if (downAt !== undefined) outages.push(state.at - downAt)
        downAt = undefined
      } else if (state.state === 'reconnecting' || state.state === 'error') downAt ??= state.at
      // A websocket is closed only by its worker's drain, which asks it back at once: never by a
      // worker that accepted it while draining and closed it when it stopped.
      if (client.name === 'sdk' && state.state === 'reconnecting')
        t.is(state.retryInMs, 0, `sdk: reconnects only when a drain asks it to (${state.reason})`)
    }
    t.is(downAt, undefined, `${client.name}: open at the end`)
    if (client.name === 'sdk') t.is(outages.length, 1, 'sdk: closed once, by the drain')
    else t.true(outages.length >= 1, `${client.name}: its session was drained`)
    const bound = client.sdk ? 2000 : LEGACY_RECONNECT_MS * 1.2 + 2000
    t.true(
      outages.every(ms => ms < bound),
      `${client.name}: back within ${bound} ms each time: ${outages.join(', ')} ms`,
    )
    const reasons = log.states.flatMap(state => (state.reason ? [state.reason] : []))
    summary.push(
      `${client.name}: ${outages.length} reconnects (${outages.join(', ')} ms; ${reasons.join(', ')})`,
    )
  })
  // A session's polls, or its upgrade probe, that reach the other process on its port (the new
  // worker, before the drain closed the session on the old one) get 400: README, Deployment. Once,
  // in a full-suite run, a snapper-consumer request of a session being drained got an answer
  // without CORS headers instead (not one of the gateway's Engine.IO answers, which all have them; nginx's
  // own 502 has none), which the browser logs as a CORS error: the same request failing, the
  // same reconnect. Once (2026-12-07) the SDK's poll did too, which the browser names a fetch.
  const isBlockedSessionRequest = (problem: string) =>
    /^console: Access to (?:XMLHttpRequest|fetch) at '\S+transport=polling\S*&sid=\S+' from origin '\S+' has been blocked by CORS policy: No 'Access-Control-Allow-Origin' header is present on the requested resource\.(?: If an opaque response serves your needs, set the request's mode to 'no-cors' to fetch the resource with CORS disabled\.)?$/.test(
      problem,
    )
  // Each blocked request is also logged as this, without its address.
  let blockedFailures = problems.filter(isBlockedSessionRequest).length
  const isBlockedFailure = (problem: string) =>
    problem === 'console: Failed to load resource: net::ERR_FAILED' && blockedFailures-- > 0
  const isSessionElsewhere = (problem: string) =>
    /^HTTP 400 \S+transport=polling\S*&sid=/.test(problem) ||
    isBlockedSessionRequest(problem) ||
    isBlockedFailure(problem) ||
    /^console: WebSocket connection to '\S+&sid=\S+' failed: Error during WebSocket handshake: Unexpected response code: 400$/.test(
      problem,
    ) ||
    problem === 'console: Failed to load resource: the server responded with a status of 400 (Bad Request)'
  t.deepEqual(
    problems.filter(problem => !isSessionElsewhere(problem)),
    [],
    'no other console error, failed request or page error',
  )
  t.log(`${summary.join('; ')}; ${problems.length} failed polls logged`)

  cli.signal('SIGTERM')
  t.is(await cli.exited, 0)
  t.notRegex(cli.output(), /"level":(50|60)/, 'nothing went wrong on the server')
})
