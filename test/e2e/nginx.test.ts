/**
 * Production shape on one host: `snapper start --workers 3` (real CLI, real
 * node:cluster) behind the repository's nginx.conf (real nginx, ip_hash),
 * snapper-consumer@1.3.6 with its default transports (polling, then the
 * upgrade) through nginx from several source addresses, and producers on the
 * shared producer port, which node:cluster spreads over the workers.
 */
import test from 'ava'
import Producer from 'snapper-producer'
import { Tokens } from '../../src/auth/token.js'
import { call, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { startCli } from '../helpers/cli.js'
import { connectConsumer, type TestConsumer } from '../helpers/consumers.js'
import { startNginx } from '../helpers/nginx.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])
const WORKERS = 3

test('nginx ip_hash over 3 workers: sessions stick, upgrades work, any producer reaches any consumer', async t => {
  const cli = await startCli(t, {
    workers: WORKERS,
    env: {
      SNAPPER_REDIS: server.url,
      SNAPPER_REDIS_PREFIX: uniquePrefix(),
      SNAPPER_TOKEN_SECRETS: TEST_SECRET,
    },
  })
  const nginx = await startNginx(cli.ports.gateway, WORKERS)
  t.teardown(() => nginx.stop())

  // One polling session, 30 requests through nginx: every one reaches the worker that holds it.
  const token = tokens.sign({ userId: newUserId() })
  const base = `http://127.0.0.1:${nginx.port}/websocket/?EIO=4&transport=polling&token=${token}`
  const handshake = await fetch(base)
  t.is(handshake.status, 200)
  const sid = (JSON.parse((await handshake.text()).slice(1)) as { sid: string }).sid
  for (let i = 0; i < 15; i++) {
    const post = await fetch(`${base}&sid=${sid}`, {
      method: 'POST',
      body: `4{"jsonrpc":"2.0","id":${i + 1},"method":"echo","params":[${i}]}`,
    })
    t.is(post.status, 200)
    const poll = await fetch(`${base}&sid=${sid}`)
    t.is(poll.status, 200)
    t.true((await poll.text()).includes(`"id":${i + 1},"result":[${i}]`))
  }

  // Consumers from 12 different /24 networks (what ip_hash looks at), default transports.
  const consumers: TestConsumer[] = Array.from({ length: 12 }, (_, i) =>
    connectConsumer('v3 default', nginx.port, tokens.sign({ userId: newUserId() }), {
      localAddress: `127.${i + 1}.0.1`,
    }),
  )
  t.teardown(() => consumers.forEach(consumer => consumer.close()))
  const ids = await Promise.all(consumers.map(consumer => consumer.opened()))
  // Each worker reports its online count every statsFlushMs.
  const statsToken = tokens.sign({ name: 'snapper' })
  let current: Record<string, number> = {}
  await eventually(async () => {
    const response = await fetch(`http://127.0.0.1:${cli.ports.admin}/stats?token=${statsToken}`)
    current = ((await response.json()) as { stats: { current: Record<string, number> } }).stats.current
    return Object.values(current).reduce((sum, online) => sum + online, 0) >= consumers.length
  })
  const busyWorkers = Object.values(current).filter(online => online > 0)
  t.true(busyWorkers.length >= 2, `consumers spread over the workers: ${JSON.stringify(current)}`)

  // Producers on the shared port land on different workers; each publishes its own sequence.
  const producers = await Promise.all(
    Array.from({ length: 4 }, async (_, i) => {
      const producer = new Producer(cli.ports.producer, '127.0.0.1', {
        secretKeys: [TEST_SECRET],
        producerId: `p${i}`,
      })
      producer.on('error', () => {})
      t.teardown(() => producer.close())
      await new Promise(resolve => producer.once('connect', resolve))
      return producer
    }),
  )
  await Promise.all(ids.map((id, i) => call(producers[i % producers.length]!.joinRoom('everyone', id))))
  const perProducer = 25
  producers.forEach((producer, p) => {
    for (let i = 0; i < perProducer; i++) producer.sendMessage('everyone', `p${p}:${i}`)
  })
  await Promise.all(consumers.map(consumer => consumer.waitFor(perProducer * producers.length, 30_000)))
  for (const consumer of consumers) {
    for (let p = 0; p < producers.length; p++) {
      const own = consumer.messages.filter(message => message.startsWith(`p${p}:`))
      t.deepEqual(
        own,
        Array.from({ length: perProducer }, (_, i) => `p${p}:${i}`),
        'each producer in order, once',
      )
    }
  }
  t.true(
    consumers.every(consumer => consumer.transport === 'websocket'),
    'every session upgraded to websocket through nginx',
  )

  cli.signal('SIGTERM')
  t.is(await cli.exited, 0)
})
