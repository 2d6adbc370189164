import test from 'ava'
import { pino } from 'pino'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, errorBody, startAdminApp } from './harness.js'
import { eventually } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('healthz: 200 {"status":"ok"} while the process runs', async t => {
  const h = await startAdminApp(t, server.url, { readiness: () => ['draining'] })
  const answer = await call(`${h.base}/healthz`)
  t.is(answer.status, 200)
  t.deepEqual(answer.json, { status: 'ok' })
})

test('readyz: 200 while Redis answers and the process says ready; 503 with its reasons otherwise', async t => {
  let reasons: string[] = []
  const h = await startAdminApp(t, server.url, { readiness: () => reasons })
  const ready = await call(`${h.base}/readyz`)
  t.is(ready.status, 200)
  t.deepEqual(ready.json, { status: 'ok' })
  reasons = ['worker 1 not ready', 'draining']
  const notReady = await call(`${h.base}/readyz`)
  t.is(notReady.status, 503)
  t.deepEqual(notReady.json, { status: 'unavailable', reasons: ['worker 1 not ready', 'draining'] })
})

test('readyz follows Redis: ready, unavailable once redis-server is killed, ready again after its restart', async t => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const h = await startAdminApp(t, own.url)
  t.is((await call(`${h.base}/readyz`)).status, 200)

  await own.kill()
  const down = await eventually(async () => {
    const answer = await call(`${h.base}/readyz`)
    return answer.status === 503 && answer
  })
  t.like(down.json, { status: 'unavailable' })
  t.regex((down.json as { reasons: string[] }).reasons.join(), /^redis: /)

  await own.restart()
  await eventually(async () => (await call(`${h.base}/readyz`)).status === 200)
  t.pass()
})

test('readyz: a Redis that does not answer PING within 1 s is unavailable (CLIENT PAUSE)', async t => {
  const own = await startRedis() // a paused server would stall the other tests
  t.teardown(() => own.stop())
  const h = await startAdminApp(t, own.url)
  await own.client().client('PAUSE', 1500, 'ALL')
  const started = Date.now()
  const answer = await call(`${h.base}/readyz`)
  t.is(answer.status, 503)
  t.deepEqual(answer.json, { status: 'unavailable', reasons: ['redis: no PING answer within 1000 ms'] })
  t.true(Date.now() - started < 1400, 'answered at the ping timeout, not when Redis came back')
})

test('a bug behind a route: 500 Internal error, logged with its stack, its message never echoed', async t => {
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const h = await startAdminApp(t, server.url, {
    logger,
    readiness: () => {
      throw new Error('secret internal detail')
    },
  })
  const answer = await call(`${h.base}/readyz`)
  t.is(answer.status, 500)
  t.deepEqual(answer.json, errorBody(-32603, 'Internal error', 'INTERNAL'))
  t.false(answer.text.includes('secret'))
  const logged = lines.find(line => line.msg === 'admin request failed unexpectedly') as {
    err: { stack: string }
  }
  t.regex(logged.err.stack, /secret internal detail\n\s+at /)
  const access = lines.filter(line => line.msg === 'admin request')
  t.like(access.at(-1), { level: 20, method: 'GET', path: '/readyz', status: 500 })
})

/** How many PINGs `redis` has run (INFO commandstats). */
async function pingsRun(redis: RedisServer): Promise<number> {
  const client = redis.client()
  try {
    const info = await client.info('commandstats')
    return Number(/cmdstat_ping:calls=(\d+)/.exec(info)?.[1] ?? 0)
  } finally {
    client.disconnect()
  }
}

test('readyz: requests that come while Redis hangs share one round of PINGs, not one PING each', async t => {
  const own = await startRedis() // a stopped server would stall the other tests
  t.teardown(async () => {
    own.signal('SIGCONT')
    await own.stop()
  })
  // The 300 requests come from one address: past adminMaxConnectionsPerAddress they would get its 503.
  const h = await startAdminApp(t, own.url, { overrides: { adminMaxConnectionsPerAddress: 0 } })
  // Twice: the first may PING on the commands connection while the PING connection is being made.
  await eventually(async () => (await call(`${h.base}/readyz`)).status === 200)
  t.is((await call(`${h.base}/readyz`)).status, 200)
  const before = await pingsRun(own)
  own.signal('SIGSTOP')
  const answers = await Promise.all(Array.from({ length: 300 }, () => call(`${h.base}/readyz`)))
  t.deepEqual(
    new Set(answers.map(answer => (answer.json as { status?: unknown }).status)),
    new Set(['unavailable']),
  )
  own.signal('SIGCONT')
  // Each PING that waited is run once Redis is back: before, one for each request (300), held in memory until then.
  const pings = (await pingsRun(own)) - before
  t.true(pings <= 3, `${pings} PINGs for 300 requests`)
})
