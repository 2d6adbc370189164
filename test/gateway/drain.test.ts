/**
 * A draining node (SIGTERM, a rolling restart's old worker) opens no new
 * consumer session, not even for a handshake that reaches it over an HTTP
 * connection kept open past its closed listener (a browser's keep-alive, a
 * load balancer's pool): such a session would get nothing and be closed
 * without a notice when the drain ends.
 */
import { Agent, request } from 'node:http'
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

/** GET over `agent`; resolves with the status, the body and the local port of the connection used. */
function get(
  agent: Agent,
  port: number,
  path: string,
): Promise<{ status: number; body: string; via: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, via: req.socket?.localPort ?? 0 }))
    })
    req.on('error', reject)
    req.end()
  })
}

const handshake = (userId: string): string =>
  `/websocket/?EIO=4&transport=polling&token=${tokens.sign({ userId }, 3600)}`

test('a handshake over a connection kept open to a draining node gets 503', async t => {
  const broker = await startBroker(t, server.url, { drainSpreadMs: 2000, consumerRetryAfterMs: 1500 })
  const port = broker.ports.gateway
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const first = await get(agent, port, handshake(newUserId()))
  t.is(first.status, 200)

  const stopping = broker.stop() // the drain spreads its closes over 2 s
  const refused = await get(agent, port, handshake(newUserId()))
  t.is(refused.via, first.via, 'the same kept-open connection')
  t.is(refused.status, 503)
  t.deepEqual(JSON.parse(refused.body), { code: 3, message: 'Shutting down', retryAfterMs: 1500 })
  await stopping
})
