/**
 * A graceful close of the producer listener under load: the FIN waits for a
 * pause in the producer's traffic; what snapper-producer sent before it saw
 * the FIN is stored, what it sends after goes to the next listener once it
 * reconnects. No `sendMessage` is lost.
 */
import { connect } from 'node:net'
import test from 'ava'
import Producer from 'snapper-producer'
import { Tokens } from '../../src/auth/token.js'
import { createBrokerCore } from '../../src/broker/core.js'
import { defaults, type Config } from '../../src/config/defaults.js'
import { silentLogger } from '../../src/log.js'
import { createProducerListener } from '../../src/producer/listener.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { AUTH_FRAME, SECRET } from './setup.js'
import { eventually, eventWithin, pause } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

for (const [pattern, burst, pauseMs] of [
  ['a tight stream', 20, 0],
  ['bursts with pauses', 300, 250],
] as const) {
  test(`${pattern}: messages sent while the listener drains are stored by it or the next one, each once, in order`, async t => {
    const config: Config = { ...defaults, redisPrefix: uniquePrefix(), tokenSecrets: [SECRET] }
    const clients = createRedisClients({ kind: 'standalone', url: server.url }, silentLogger)
    await clients.connect(5000)
    t.teardown(() => clients.quit())
    const core = createBrokerCore(config, clients, silentLogger)
    const listen = () =>
      createProducerListener({
        config,
        tokens: new Tokens([SECRET]),
        api: core.producerApi,
        logger: silentLogger,
      })

    const first = listen()
    const port = await first.listen(0, '127.0.0.1')
    const producer = new Producer(port, '127.0.0.1', { secretKeys: [SECRET], producerId: 'drain' })
    producer.on('error', () => {})
    t.teardown(() => producer.close())
    await eventWithin(producer, 'connect')

    const total = 3000
    let sent = 0
    const sending = (async () => {
      while (sent < total) {
        for (let i = 0; i < burst && sent < total; i++) producer.sendMessage('drained', String(sent++))
        await (pauseMs === 0 ? new Promise(resolve => setImmediate(resolve)) : pause(pauseMs))
      }
    })()
    while (sent < total / 3) await new Promise(resolve => setImmediate(resolve))
    await first.close() // mid-stream
    const second = listen()
    t.teardown(() => second.close())
    await second.listen(port, '127.0.0.1')
    await sending

    const log = core.keys.room('drained').log
    const redis = server.client()
    const stored = async (): Promise<string[]> =>
      (await redis.xrange(log, '-', '+')).map(([, fields]) => fields[1]!)
    // Or give up: the assertion below shows what is missing.
    await eventually(async () => (await stored()).length >= total, { timeoutMs: 15_000, everyMs: 50 }).catch(
      () => {},
    )
    t.deepEqual(
      await stored(),
      Array.from({ length: total }, (_, i) => String(i)),
    )
  })
}

test('a publish that arrives after our FIN is still stored; a request then is not served', async t => {
  const config: Config = { ...defaults, redisPrefix: uniquePrefix(), tokenSecrets: [SECRET] }
  const clients = createRedisClients({ kind: 'standalone', url: server.url }, silentLogger)
  await clients.connect(5000)
  t.teardown(() => clients.quit())
  const core = createBrokerCore(config, clients, silentLogger)
  const listener = createProducerListener({
    config,
    tokens: new Tokens([SECRET]),
    api: core.producerApi,
    logger: silentLogger,
  })
  const port = await listener.listen(0, '127.0.0.1')

  // A client that keeps writing after the server's FIN, as snapper-producer can until it notices.
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => socket.destroy())
  await eventWithin(socket, 'connect')
  socket.write(AUTH_FRAME)
  await eventWithin(socket, 'data')
  const closed = listener.close()
  await eventWithin(socket, 'end')
  const frame = (json: string): string => `$${Buffer.byteLength(json)}\r\n${json}\r\n`
  socket.write(frame('{"jsonrpc":"2.0","method":"publish","params":[["late","after FIN"]]}'))
  socket.write(
    frame('{"jsonrpc":"2.0","id":"r:1","method":"publish","params":[["late","request after FIN"]]}'),
  )
  socket.end()
  await closed
  const entries = await server.client().xrange(core.keys.room('late').log, '-', '+')
  t.deepEqual(
    entries.map(([, fields]) => fields[1]),
    ['after FIN'],
  )
})
