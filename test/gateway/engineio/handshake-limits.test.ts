/**
 * New sessions per client address per second (maxHandshakesPerAddressPerSec),
 * and who the client is behind a trusted proxy (trustedProxies): refused
 * handshakes get 429 before the authorize hook runs; requests of sessions
 * already open are never counted. Clients are told apart by their address:
 * Linux routes all of 127.0.0.0/8 to loopback.
 */
import test, { type ExecutionContext } from 'ava'
import type { EngineOptions } from '../../../src/gateway/engineio/server.js'
import {
  openSocket,
  refusedUpgrade,
  request,
  startEcho,
  type EchoServer,
} from '../../helpers/engineio-harness.js'

async function echo(t: ExecutionContext, options: Partial<EngineOptions>): Promise<EchoServer> {
  const server = await startEcho(options)
  t.teardown(() => server.stop())
  return server
}

const TOO_MANY = '{"code":3,"message":"Too many handshakes from this address","retryAfterMs":1000}'
const handshake = (server: EchoServer, localAddress: string, headers = {}) =>
  request(server.url('EIO=4&transport=polling&token=good'), { localAddress, headers })

test('past maxHandshakesPerAddressPerSec: 429 on polling and on an upgrade; other addresses and open sessions are not counted', async t => {
  const server = await echo(t, { maxHandshakesPerAddressPerSec: 2 })
  const first = await handshake(server, '127.0.0.2')
  t.is(first.status, 200)
  t.is((await handshake(server, '127.0.0.2')).status, 200)
  const refused = await handshake(server, '127.0.0.2')
  t.is(refused.status, 429)
  t.is(refused.text, TOO_MANY)
  t.is(refused.headers['retry-after'], '1')
  const upgrade = await refusedUpgrade(server.url('EIO=4&transport=websocket&token=good', 'ws'), {
    localAddress: '127.0.0.2',
  })
  t.deepEqual([upgrade.status, upgrade.body], [429, 'Too many handshakes from this address'])
  t.is(upgrade.headers['retry-after'], '1')
  t.is(server.handshakes.length, 2, 'the authorize hook never saw the refused ones')

  // Another address has its own allowance; a session already open goes on polling and upgrading.
  t.is((await handshake(server, '127.0.0.3')).status, 200)
  const sid = (JSON.parse(first.text.slice(first.text.indexOf('{'))) as { sid: string }).sid
  const probe = await openSocket(server.url(`EIO=4&transport=websocket&sid=${sid}`, 'ws'), {
    localAddress: '127.0.0.2',
  })
  t.teardown(() => probe.ws.terminate())
  probe.ws.send('2probe')
  t.is(await probe.next(), '3probe')
  t.is(server.engine.handshakesRateLimited, 2)

  // The next second admits that address again.
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.is((await handshake(server, '127.0.0.2')).status, 200)
})

test('from a trusted proxy, X-Forwarded-For (or X-Real-IP) names the client; from anyone else it is ignored', async t => {
  const server = await echo(t, { maxHandshakesPerAddressPerSec: 1, trustedProxies: ['127.0.0.2'] })
  const via = (client: string) => ({ 'x-forwarded-for': `${client}, 127.0.0.9` }) // a proxy chain
  t.is((await handshake(server, '127.0.0.2', { 'x-forwarded-for': '10.0.0.1' })).status, 200)
  t.is((await handshake(server, '127.0.0.2', { 'x-forwarded-for': '10.0.0.2' })).status, 200)
  t.is((await handshake(server, '127.0.0.2', { 'x-forwarded-for': '10.0.0.1' })).status, 429)
  t.is((await handshake(server, '127.0.0.2', { 'x-real-ip': '10.0.0.3' })).status, 200)
  // The proxy's peer (127.0.0.9 in the header) is no trusted proxy: it is the client.
  t.is((await handshake(server, '127.0.0.2', via('10.0.0.4'))).status, 200)
  t.deepEqual(
    server.handshakes.map(h => h.remoteAddress),
    ['10.0.0.1', '10.0.0.2', '10.0.0.3', '127.0.0.9'],
  )

  // A client that writes the header itself is still its own address.
  t.is((await handshake(server, '127.0.0.4', { 'x-forwarded-for': '10.0.0.5' })).status, 200)
  t.is((await handshake(server, '127.0.0.4', { 'x-forwarded-for': '10.0.0.6' })).status, 429)
  t.is(server.handshakes.at(-1)?.remoteAddress, '127.0.0.4')
})

test('an IPv6 client counts by its /64 (perAddressIpv6PrefixBits): a new address of the same network is no new client', async t => {
  const server = await echo(t, { maxHandshakesPerAddressPerSec: 1, trustedProxies: ['127.0.0.2'] })
  const from = (client: string) => handshake(server, '127.0.0.2', { 'x-forwarded-for': client })
  t.is((await from('2001:db8:1:2::a')).status, 200)
  t.is((await from('2001:db8:1:2:ffff::b')).status, 429, 'another address of the same /64')
  t.is((await from('2001:db8:1:3::a')).status, 200, 'another /64')
  t.deepEqual(
    server.handshakes.map(h => h.remoteAddress),
    ['2001:db8:1:2::a', '2001:db8:1:3::a'],
    'the hook still sees each address',
  )

  const exact = await echo(t, {
    maxHandshakesPerAddressPerSec: 1,
    trustedProxies: ['127.0.0.2'],
    perAddressIpv6PrefixBits: 128,
  })
  t.is((await handshake(exact, '127.0.0.2', { 'x-forwarded-for': '2001:db8:1:2::a' })).status, 200)
  t.is(
    (await handshake(exact, '127.0.0.2', { 'x-forwarded-for': '2001:db8:1:2::b' })).status,
    200,
    '128: each apart',
  )
})
