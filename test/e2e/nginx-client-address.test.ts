/**
 * The handshake rate limit behind the repository's nginx.conf (real nginx,
 * which sends X-Forwarded-For): with nginx as a trusted proxy every client
 * has its own allowance; without, every client is nginx, and one client's
 * handshakes use up everybody's. Clients connect from different loopback
 * addresses.
 */
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import type { Config } from '../../src/config/defaults.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { request } from '../helpers/engineio-harness.js'
import { startNginx } from '../helpers/nginx.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

/** A node allowing one handshake per address per second, behind nginx; returns a handshake through it. */
async function behindNginx(t: ExecutionContext, overrides: Partial<Config>) {
  const node = await startBroker(t, server.url, { maxHandshakesPerAddressPerSec: 1, ...overrides })
  const nginx = await startNginx(node.ports.gateway, 1)
  t.teardown(() => nginx.stop())
  const handshake = async (localAddress: string): Promise<number> => {
    const token = tokens.sign({ userId: newUserId() })
    const url = `http://127.0.0.1:${nginx.port}/websocket/?EIO=4&transport=polling&token=${token}`
    return (await request(url, { localAddress })).status
  }
  return { nginx, handshake }
}

test('nginx trusted: each client address has its own allowance', async t => {
  const { nginx, handshake } = await behindNginx(t, { trustedProxies: ['127.0.0.1'] })
  t.is(await handshake('127.0.0.2'), 200)
  t.is(await handshake('127.0.0.2'), 429)
  t.is(await handshake('127.0.0.3'), 200)
  // A real client from a fresh address connects through nginx.
  const consumer = connectConsumer('v4 websocket', nginx.port, tokens.sign({ userId: newUserId() }), {
    localAddress: '127.0.0.4',
  })
  t.teardown(() => consumer.close())
  t.truthy(await consumer.opened())
})

test('nginx not trusted: every client counts as nginx', async t => {
  const { handshake } = await behindNginx(t, {})
  t.is(await handshake('127.0.0.2'), 200)
  t.is(await handshake('127.0.0.3'), 429, "the first client used up nginx's allowance")
})
