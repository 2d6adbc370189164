/**
 * The real CLI in cluster mode: `snapper start --workers 2`, the admin app in
 * the primary, /metrics summed over both workers by prom-client's
 * AggregatorRegistry, then SIGTERM and exit code 0 with no worker left.
 */
import test from 'ava'
import Producer from 'snapper-producer'
import { checkPorts } from '../../src/cli/primary.js'
import { ConfigError } from '../../src/config/load.js'
import { isAlive, startCli } from '../helpers/cli.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { call, sample, SECRET, TOKENS } from './harness.js'
import { eventually, eventWithin } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

test('cluster: /metrics of the primary sums both workers; SIGTERM drains and exits 0', async t => {
  const cli = await startCli(t, {
    workers: 2,
    env: {
      SNAPPER_REDIS: server.url,
      SNAPPER_REDIS_PREFIX: uniquePrefix(),
      SNAPPER_TOKEN_SECRETS: SECRET,
      SNAPPER_DRAIN_SPREAD_MS: '0',
    },
  })
  const base = `http://127.0.0.1:${cli.ports.admin}`
  const producerPort = cli.ports.producer
  const stats = (await call(`${base}/stats`, { token: TOKENS.operator })).json as {
    workers: { pid: number; isReady: boolean }[]
  }
  const workerPids = await cli.workerPids(TOKENS.operator)
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
  await Promise.all(producers.map(producer => eventWithin(producer, 'connect')))
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
  cli.signal('SIGTERM')
  t.is(await cli.exited, 0, cli.output())
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
