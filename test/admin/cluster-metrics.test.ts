/**
 * The real CLI in cluster mode: `snapper start --workers 2`, the admin app in
 * the primary, /metrics summed over both workers, then SIGTERM and exit code
 * 0 with no worker left. Workers killed with SIGKILL (a crash) or frozen with
 * SIGSTOP (stuck): the sums never go back, and a scrape never waits long.
 */
import test from 'ava'
import Producer from 'snapper-producer'
import { Tokens } from '../../src/auth/token.js'
import { checkPorts } from '../../src/cli/primary.js'
import { ConfigError } from '../../src/config/load.js'
import { sumMetrics, type MetricJson } from '../../src/metrics/cluster.js'
import { newUserId } from '../helpers/broker.js'
import { isAlive, startCliOn, type RunningCli, type Teardowns } from '../helpers/cli.js'
import { connectConsumer } from '../helpers/consumers.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { call, sample, SECRET, TOKENS } from './harness.js'
import { eventually, eventWithin, pause, within } from '../helpers/eventually.js'

test('sums do not depend on the order of their terms: a counter summed in another order never drops by float noise', async t => {
  const answer = (value: number): MetricJson[] => [
    {
      name: 'cpu_seconds_total',
      help: 'cpu',
      type: 'counter',
      aggregator: 'sum',
      values: [{ value, labels: {} }],
    },
  ]
  // 0.1 + 0.2 + 0.3 is 0.6000000000000001 in floats, 0.3 + 0.2 + 0.1 is 0.6.
  const texts = await Promise.all(
    [
      [0.1, 0.2, 0.3],
      [0.3, 0.2, 0.1],
    ].map(async order => (await sumMetrics(order.map(answer))).metrics()),
  )
  t.is(sample(texts[0]!, 'cpu_seconds_total'), 0.6)
  t.is(sample(texts[1]!, 'cpu_seconds_total'), 0.6)
})

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const startCluster = (t: Teardowns): Promise<RunningCli> => startCliOn(t, server.url, SECRET)

test('cluster: /metrics of the primary sums both workers; SIGTERM drains and exits 0', async t => {
  const cli = await startCluster(t)
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

/**
 * Sends `count` messages over `connections` producer connections (spread over
 * the workers); resolves with what closes them, once the caller saw them
 * counted (a producer closed at once may drop what it has not written yet).
 */
async function publish(
  t: Teardowns,
  producerPort: number,
  connections: number,
  count: number,
): Promise<() => void> {
  const producers = Array.from(
    { length: connections },
    (_, n) => new Producer(producerPort, '127.0.0.1', { secretKeys: [SECRET], producerId: `p${n}` }),
  )
  const close = () => producers.forEach(producer => producer.close())
  t.teardown(close)
  await Promise.all(producers.map(producer => eventWithin(producer, 'connect')))
  for (let i = 0; i < count; i++) producers[i % connections]!.sendMessage('room', `m${i}`)
  return close
}

/**
 * A consumer on each worker's gateway, in room `room`: their acks fill the
 * latency histograms. They reconnect to the same port when their worker restarts.
 */
async function consumeOnEveryWorker(t: Teardowns, cli: RunningCli): Promise<void> {
  const tokens = new Tokens([SECRET])
  const consumers = [0, 1].map(i =>
    connectConsumer('v4 websocket', cli.ports.gateway + i, tokens.sign({ userId: newUserId() }), {
      reconnectMs: 200,
    }),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  const ids = await within(Promise.all(consumers.map(consumer => consumer.opened())), 10_000, 'consumers')
  for (const consumerId of ids) {
    const joined = await call(`http://127.0.0.1:${cli.ports.admin}/v1/rooms/room/subscribe`, {
      token: TOKENS.producer,
      body: { consumerId },
    })
    if (joined.status !== 200) throw new Error(`subscribe: ${joined.status} ${joined.text}`)
  }
}

/** /metrics once `snapper_messages_published_total` is `count`. */
const metricsWhen = (base: string, count: number): Promise<string> =>
  eventually(
    async () => {
      const text = (await call(`${base}/metrics`)).text
      return sample(text, 'snapper_messages_published_total') === count && text
    },
    { what: `snapper_messages_published_total ${count}` },
  )

/** Every sample of the counter and histogram families of a Prometheus text, by series (name and labels). */
function monotonicSamples(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  let isMonotonic = false
  for (const line of text.split('\n')) {
    const type = /^# TYPE \S+ (\S+)$/.exec(line)
    if (type) isMonotonic = type[1] === 'counter' || type[1] === 'histogram'
    else if (isMonotonic && line !== '' && !line.startsWith('#')) {
      const cut = line.lastIndexOf(' ')
      samples.set(line.slice(0, cut), Number(line.slice(cut + 1)))
    }
  }
  return samples
}

/** The counter and histogram series of `before` that are lower (or gone) in `after`. */
function wentBack(before: string, after: string): string[] {
  const later = monotonicSamples(after)
  return [...monotonicSamples(before)].flatMap(([series, value]) =>
    (later.get(series) ?? -1) < value ? [`${series}: ${value} → ${later.get(series)}`] : [],
  )
}

/** Waits until the slot of the worker `pid` holds a new worker, ready. */
const restartedAfter = (cli: RunningCli, pid: number): Promise<number[]> =>
  eventually(
    async () => {
      const pids = await cli.workerPids(TOKENS.operator)
      return pids.length === 2 && !pids.includes(pid) && pids
    },
    { what: `worker ${pid} to be restarted`, timeoutMs: 30_000, everyMs: 100 },
  )

test('cluster: counters and histograms summed over the workers never go back when workers crash or roll', async t => {
  const cli = await startCluster(t)
  const base = `http://127.0.0.1:${cli.ports.admin}`
  await consumeOnEveryWorker(t, cli)
  const closeFirst = await publish(t, cli.ports.producer, 4, 40)
  let before = await eventually(
    async () => {
      const text = (await call(`${base}/metrics`)).text
      const acks = sample(text, 'snapper_ack_latency_seconds_count') ?? 0
      return sample(text, 'snapper_messages_published_total') === 40 && acks > 0 && text
    },
    { what: '40 messages published, and acks in snapper_ack_latency_seconds' },
  )
  closeFirst()

  // Both killed in turn: every message counted so far was counted by a worker that died.
  for (const pid of await cli.workerPids(TOKENS.operator)) {
    process.kill(pid, 'SIGKILL')
    await restartedAfter(cli, pid)
    const after = (await call(`${base}/metrics`)).text
    t.deepEqual(wentBack(before, after), [], `after worker ${pid} was killed`)
    t.is(sample(after, 'snapper_messages_published_total'), 40, 'counted before the scrape: kept')
    before = after
  }
  t.is(sample(before, 'snapper_primary_worker_crashes_total'), 2, 'each crash counted by the primary')

  // A rolling restart (SIGHUP): each worker drains and exits once its successor is ready.
  const pids = await cli.workerPids(TOKENS.operator)
  cli.signal('SIGHUP')
  await eventually(
    async () => {
      const now = await cli.workerPids(TOKENS.operator)
      return now.length === 2 && now.every(pid => !pids.includes(pid))
    },
    { what: 'both workers replaced', timeoutMs: 30_000, everyMs: 100 },
  )
  const rolled = (await call(`${base}/metrics`)).text
  t.deepEqual(wentBack(before, rolled), [], 'after a rolling restart')
  t.is(sample(rolled, 'snapper_primary_worker_crashes_total'), 2, 'a rolling restart is no crash')
  before = rolled

  await publish(t, cli.ports.producer, 2, 10)
  const last = await metricsWhen(base, 50)
  t.deepEqual(wentBack(before, last), [])
  // A gauge: the live workers only. A replaced worker counts until its process has exited,
  // which can come a few hundred ms after its successor is listed.
  await eventually(async () => sample((await call(`${base}/metrics`)).text, 'snapper_nodes') === 2, {
    what: 'snapper_nodes 2: the replaced workers gone',
  })
})

// Serial: alone, so that the time a scrape takes is its own, not the other tests' CPU.
test.serial(
  'cluster: a scrape does not wait for a stuck or exiting worker: 200 within 2 s, its last counts, the missing gauge',
  async t => {
    const cli = await startCluster(t)
    const base = `http://127.0.0.1:${cli.ports.admin}`
    const closeProducers = await publish(t, cli.ports.producer, 2, 20)
    await metricsWhen(base, 20)
    closeProducers()
    const [stuck] = await cli.workerPids(TOKENS.operator)
    const timedScrape = async () => {
      const startedAt = Date.now()
      const answer = await call(`${base}/metrics`)
      return { ...answer, tookMs: Date.now() - startedAt }
    }

    process.kill(stuck!, 'SIGSTOP')
    const frozen = await timedScrape()
    t.is(frozen.status, 200)
    t.true(frozen.tookMs < 2000, `took ${frozen.tookMs} ms`)
    t.is(sample(frozen.text, 'snapper_metrics_workers_missing'), 1)
    t.is(
      sample(frozen.text, 'snapper_messages_published_total'),
      20,
      "the stuck worker's last answer stands in",
    )
    t.is(sample(frozen.text, 'snapper_nodes'), 2)

    // Killed while a scrape waits for it (frozen, it cannot answer): the pause lets the scrape get under way.
    const exiting = timedScrape()
    await pause(100)
    process.kill(stuck!, 'SIGKILL')
    const during = await exiting
    t.is(during.status, 200)
    t.true(during.tookMs < 2000, `took ${during.tookMs} ms`)

    await restartedAfter(cli, stuck!)
    const after = (await call(`${base}/metrics`)).text
    t.is(sample(after, 'snapper_metrics_workers_missing'), 0)
    t.is(sample(after, 'snapper_messages_published_total'), 20, "the killed worker's last answer, retired")
    t.is(sample(after, 'snapper_http_errors_total{code="INTERNAL"}'), undefined)
    t.false(cli.output().includes('admin request failed unexpectedly'), cli.output())
  },
)

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
