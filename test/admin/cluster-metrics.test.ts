/**
 * The real CLI in cluster mode: `snapper start --workers 2`, the admin app in
 * the primary, /metrics summed over both workers by prom-client's
 * AggregatorRegistry, then SIGTERM and exit code 0 with no worker left.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import Producer from 'snapper-producer'
import { checkPorts } from '../../src/cli/workers.js'
import { ConfigError } from '../../src/config/load.js'
import { freePort } from '../helpers/ports.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { call, eventually, sample, SECRET, TOKENS } from './harness.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const CLI = fileURLToPath(new URL('../../src/cli/snapper.js', import.meta.url))

const isFree = (port: number): Promise<boolean> =>
  new Promise(resolve => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })

/** `count` consecutive free ports (worker i's gateway listens on gatewayPort + i). */
async function freePorts(count: number): Promise<number> {
  for (;;) {
    const first = await freePort()
    let isRun = true
    for (let i = 1; i < count && isRun; i++) isRun = await isFree(first + i)
    if (isRun) return first
  }
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false // ESRCH: gone
  }
}

test('cluster: /metrics of the primary sums both workers; SIGTERM drains and exits 0', async t => {
  const [gateway, producerPort, adminPort] = [await freePorts(2), await freePort(), await freePort()]
  const child = spawn(process.execPath, [CLI, 'start', '--workers', '2'], {
    env: {
      ...process.env,
      SNAPPER_HOST: '127.0.0.1',
      SNAPPER_REDIS: server.url,
      SNAPPER_REDIS_PREFIX: uniquePrefix(),
      SNAPPER_TOKEN_SECRETS: SECRET,
      SNAPPER_GATEWAY_PORT: String(gateway),
      SNAPPER_PRODUCER_PORT: String(producerPort),
      SNAPPER_ADMIN_PORT: String(adminPort),
      SNAPPER_LOG_LEVEL: 'warn',
      SNAPPER_DRAIN_SPREAD_MS: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const workerPids: number[] = []
  t.teardown(() => {
    // Only if the test failed half-way: nothing may outlive it.
    for (const pid of workerPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const base = `http://127.0.0.1:${adminPort}`

  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`snapper exited with ${child.exitCode}:\n${output}`)
    return (await call(`${base}/readyz`).catch(() => undefined))?.status === 200
  }, 15_000)
  const stats = (await call(`${base}/stats`, { token: TOKENS.operator })).json as {
    workers: { pid: number; isReady: boolean }[]
  }
  workerPids.push(...stats.workers.map(worker => worker.pid))
  t.is(workerPids.length, 2)
  t.true(stats.workers.every(worker => worker.isReady))

  const first = await call(`${base}/metrics`)
  t.is(first.status, 200)
  t.is(sample(first.text, 'snapper_nodes'), 2, 'both workers answered')
  t.is(first.text.match(/^# TYPE snapper_nodes /gm)?.length, 1, 'one family per name')
  t.true(
    first.text.includes('# TYPE snapper_primary_process_cpu_user_seconds_total counter'),
    "the primary's own",
  )
  t.true(first.text.includes('# TYPE nodejs_eventloop_lag_seconds gauge'), "the workers' process metrics")

  // Connections are spread over the workers (round robin); every message counts once, in the sum.
  const producers = [1, 2].map(
    n => new Producer(producerPort, '127.0.0.1', { secretKeys: [SECRET], producerId: `p${n}` }),
  )
  t.teardown(() => producers.forEach(producer => producer.close()))
  await Promise.all(producers.map(producer => once(producer, 'connect')))
  for (const [n, producer] of producers.entries())
    for (let i = 0; i < 3; i++) producer.sendMessage('room', `p${n}-${i}`)
  const http = await call(`${base}/v1/publish`, {
    token: TOKENS.producer,
    body: [{ room: 'room', message: 'h' }],
  })
  t.deepEqual(http.json, { result: 1 }, 'the HTTP publish API works from the primary')

  const moved = await eventually(async () => {
    const text = (await call(`${base}/metrics`)).text
    return sample(text, 'snapper_messages_published_total') === 6 && text
  })
  t.is(sample(moved, 'snapper_producer_connections'), 2)
  t.is(sample(moved, 'snapper_http_published_messages_total'), 1)
  t.is(sample(moved, 'snapper_nodes'), 2)

  for (const producer of producers) producer.close()
  child.kill('SIGTERM')
  const [code, signal] = await exited
  t.is(code, 0, output)
  t.is(signal, null)
  t.deepEqual(workerPids.filter(isAlive), [], 'no worker outlives the primary')
})

test('cluster: a listener inside the gateway range (gatewayPort + worker index) stops start-up, naming it', t => {
  const ports = { gatewayPort: 7701, producerPort: 7700, adminPort: 7699, workers: 8 }
  t.notThrows(() => checkPorts(ports))
  t.notThrows(() => checkPorts({ ...ports, adminPort: 7709 }))
  const error = t.throws(() => checkPorts({ ...ports, adminPort: 7702 }), { instanceOf: ConfigError })
  t.is(
    error.message,
    '"adminPort" 7702 is one of the gateway ports 7701..7708 (gatewayPort + worker index): choose a port outside it',
  )
  t.throws(() => checkPorts({ ...ports, producerPort: 7708 }), { message: /^"producerPort" 7708/ })
})
