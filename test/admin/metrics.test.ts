/**
 * /metrics of one process as `snapper start --workers 0` wires it (startNode
 * with an admin port): real node, gateway, producer listener, admin app.
 */
import test, { type ExecutionContext } from 'ava'
import fs, { closeSync, openSync } from 'node:fs'
import { connect } from 'node:net'
import { once } from 'node:events'
import Producer from 'snapper-producer'
import { startNode, type RunningNode } from '../../src/cli/node.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { scrape } from '../../src/metrics/index.js'
import { userRoom } from '../../src/redis/keys.js'
import { RecordingSink } from '../helpers/broker.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { call, sample, SECRET, startAdminApp, TOKENS, USER } from './harness.js'
import { eventually, eventWithin } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

async function startOne(t: ExecutionContext): Promise<{ running: RunningNode; base: string }> {
  const config: Config = {
    ...defaults,
    host: '127.0.0.1',
    redis: { kind: 'standalone', url: server.url },
    redisPrefix: uniquePrefix(),
    tokenSecrets: [SECRET],
    drainSpreadMs: 0,
  }
  const running = await startNode(
    config,
    silentLogger,
    { gateway: 0, producer: 0, admin: 0 },
    { ownsProcess: true },
  )
  t.teardown(() => running.stop())
  t.true(running.ports.admin! > 0)
  return { running, base: `http://127.0.0.1:${running.ports.admin}` }
}

const NAMES = [
  'snapper_nodes',
  'snapper_consumer_sessions',
  'snapper_consumers_online',
  'snapper_consumers_taking_over',
  'snapper_rooms_followed',
  'snapper_backlog_messages',
  'snapper_producer_connections',
  'snapper_messages_published_total',
  'snapper_messages_delivered_total',
  'snapper_consumer_connects_total',
  'snapper_batches_sent_total',
  'snapper_log_reads_total',
  'snapper_log_read_errors_total',
  'snapper_cursor_commits_total',
  'snapper_gaps_total',
  'snapper_gap_messages_total',
  'snapper_announcements_total',
  'snapper_announcements_dropped_total',
  'snapper_recent_bytes',
  'snapper_publish_pending_bytes',
  'snapper_redis_offline_commands',
  'snapper_redis_errors_total',
  'snapper_ack_timeouts_total',
  'snapper_kicks_total',
  'snapper_consumer_handshakes_total',
  'snapper_consumer_handshakes_refused_total',
  'snapper_consumer_handshakes_user_limited_total',
  'snapper_consumer_handshakes_full_total',
  'snapper_consumer_input_limited_total',
  'snapper_consumer_replaced_closes_dropped_total',
  'snapper_consumer_invalid_messages_total',
  'snapper_producer_errors_total',
  'snapper_ack_latency_seconds',
  'snapper_http_published_messages_total',
  'snapper_http_responses_total',
  'snapper_http_errors_total',
  // prom-client's process metrics
  'nodejs_eventloop_lag_seconds',
  'process_resident_memory_bytes',
]

test('metrics: Prometheus text with every snapper_* family and the process metrics', async t => {
  const { base } = await startOne(t)
  const answer = await call(`${base}/metrics`)
  t.is(answer.status, 200)
  t.regex(answer.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  for (const name of NAMES) t.true(answer.text.includes(`# TYPE ${name} `), name)
  t.is(sample(answer.text, 'snapper_nodes'), 1)
})

// Serial: the other tests' nodes open and close sockets of this process meanwhile.
test.serial(
  'a scrape counts open files without listing them on the event loop (one entry per connection)',
  async t => {
    const { base } = await startOne(t)
    const before = sample((await call(`${base}/metrics`)).text, 'process_open_fds')
    // Stand-ins for thousands of consumer sockets: listing /proc/self/fd would cost ~0.8 µs each, every scrape.
    const files = Array.from({ length: 2000 }, () => openSync('/dev/null', 'r'))
    t.teardown(() => files.forEach(fd => closeSync(fd)))
    const readdirSync = fs.readdirSync
    let listings = 0
    fs.readdirSync = ((path: unknown, ...rest: unknown[]) => {
      if (String(path) === '/proc/self/fd') listings++
      return (readdirSync as (...args: unknown[]) => unknown)(path, ...rest)
    }) as typeof fs.readdirSync
    t.teardown(() => (fs.readdirSync = readdirSync))
    const after = sample((await call(`${base}/metrics`)).text, 'process_open_fds')
    t.is(listings, 0)
    t.true(
      before !== undefined && after !== undefined && Math.abs(after - before - 2000) <= 10,
      `process_open_fds went from ${before} to ${after}`,
    )
  },
)

test('producer notifications that are ignored (unknown method, publish without params) are counted', async t => {
  const { running, base } = await startOne(t)
  const socket = connect(running.ports.producer, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()))
  const frame = (payload: object): string => {
    const text = JSON.stringify({ jsonrpc: '2.0', ...payload })
    return `$${Buffer.byteLength(text)}\r\n${text}\r\n`
  }
  socket.write(
    frame({ id: 'a', method: 'auth', params: [TOKENS.producer] }) +
      frame({ method: 'nope', params: [1] }) +
      frame({ method: 'publish' }) +
      frame({ id: 'e', method: 'echo', params: ['after'] }),
  )
  await eventually(() => received.includes('"id":"e"'), { what: 'the echo after the notifications' })
  t.is(sample((await call(`${base}/metrics`)).text, 'snapper_producer_notifications_ignored_total'), 2)
})

test('metrics move: HTTP and TCP publishes, deliveries, batches, ack latency, connections', async t => {
  const { running, base } = await startOne(t)
  const scrape = async () => (await call(`${base}/metrics`)).text
  const before = await scrape()
  t.is(sample(before, 'snapper_messages_published_total'), 0)
  t.is(sample(before, 'snapper_http_published_messages_total'), 0)

  const sink = await new RecordingSink(running.node).connect('w.metrics-consumer', USER)
  const room = userRoom(USER)
  const http = await call(`${base}/v1/publish`, {
    token: TOKENS.producer,
    body: [
      { room, message: 'h1' },
      { room, message: 'h2' },
    ],
  })
  t.deepEqual(http.json, { result: 2 })

  const producer = new Producer(running.ports.producer, '127.0.0.1', {
    secretKeys: [SECRET],
    producerId: 'metrics',
  })
  t.teardown(() => producer.close())
  await eventWithin(producer, 'connect')
  for (const message of ['t1', 't2', 't3']) producer.sendMessage(room, message)
  await sink.waitFor(5)

  const after = await eventually(async () => {
    const text = await scrape()
    return sample(text, 'snapper_messages_delivered_total') === 5 && text
  })
  t.is(sample(after, 'snapper_http_published_messages_total'), 2)
  t.is(
    sample(after, 'snapper_messages_published_total'),
    3,
    'TCP only: HTTP publishes have their own counter',
  )
  t.is(sample(after, 'snapper_producer_connections'), 1)
  t.is(sample(after, 'snapper_consumers_online'), 1)
  t.is(sample(after, 'snapper_consumer_connects_total'), 1)
  t.true(sample(after, 'snapper_batches_sent_total')! >= 1)
  t.true(sample(after, 'snapper_announcements_total')! >= 2, 'the HTTP batch and the TCP messages')
  t.is(sample(after, 'snapper_announcements_dropped_total'), 0)
  t.true(sample(after, 'snapper_recent_bytes')! >= 'h1h2t1t2t3'.length)
  t.is(sample(after, 'snapper_ack_latency_seconds_count'), sample(after, 'snapper_batches_sent_total'))
  // A response is counted once it is complete: a scrape sees the ones before it.
  const responses = sample(after, 'snapper_http_responses_total{status="200"}')!
  t.true(responses >= 2, 'the first scrape and the publish')
  t.is(sample(await scrape(), 'snapper_http_responses_total{status="200"}'), responses + 1)
})

test('metrics: requests that come while a scrape is out share its text, not one scrape each', async t => {
  let scrapes = 0
  let release = (): void => {}
  const released = new Promise<void>(resolve => (release = resolve))
  const h = await startAdminApp(t, server.url, {
    overrides: { adminMaxConnectionsPerAddress: 0 }, // the 100 requests come from one address
    metrics: async registry => {
      scrapes++
      await released
      return scrape(registry)
    },
  })
  const REQUESTS = 100
  let arrived = 0
  // Listened after the app's own listener: by then it has started a scrape, or joined the one out.
  h.server.on('request', () => {
    if (++arrived === REQUESTS) release()
  })
  const answers = await Promise.all(Array.from({ length: REQUESTS }, () => call(`${h.base}/metrics`)))
  t.deepEqual(new Set(answers.map(answer => answer.status)), new Set([200]))
  t.is(new Set(answers.map(answer => answer.text)).size, 1)
  // Before: one scrape per request, which with workers is one collect per request in every worker.
  t.is(scrapes, 1)
  t.is((await call(`${h.base}/metrics`)).status, 200)
  t.is(scrapes, 2, 'a request after the scrape was answered scrapes anew')
})
