import test from 'ava'
import { canonicalAddress } from '../../../src/client-address.js'
import { TrustedProxies } from '../../../src/gateway/engineio/peer.js'
import { RatePerSecond } from '../../../src/rate.js'
import { eventually } from '../../helpers/eventually.js'

test('canonicalAddress: IPv6 shortened, IPv4-mapped as IPv4 (uWS spells out all 8 groups)', t => {
  t.is(canonicalAddress('0000:0000:0000:0000:0000:ffff:7f00:0001'), '127.0.0.1')
  t.is(canonicalAddress('0000:0000:0000:0000:0000:0000:0000:0001'), '::1')
  t.is(canonicalAddress('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1')
  t.is(canonicalAddress('10.1.2.3'), '10.1.2.3')
})

test('clientAddress walks X-Forwarded-For from the right while the hops are trusted', t => {
  const proxies = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', 'fd00::/8'])
  t.is(proxies.clientAddress('127.0.0.1', '203.0.113.7', ''), '203.0.113.7')
  t.is(proxies.clientAddress('127.0.0.1', '198.51.100.1, 203.0.113.7, 10.1.1.1', ''), '203.0.113.7')
  t.is(proxies.clientAddress('127.0.0.1', '10.2.2.2, 10.1.1.1', ''), '10.2.2.2', 'all trusted: the first')
  t.is(proxies.clientAddress('127.0.0.1', 'garbage, 10.1.1.1', ''), '10.1.1.1', 'stops at a malformed hop')
  t.is(proxies.clientAddress('127.0.0.1', '', '203.0.113.9'), '203.0.113.9', 'X-Real-IP without XFF')
  t.is(proxies.clientAddress('127.0.0.1', '', 'nonsense'), '127.0.0.1')
  t.is(proxies.clientAddress('0000:0000:0000:0000:0000:ffff:7f00:0001', '2001:db8::2', ''), '2001:db8::2')
  t.is(proxies.clientAddress('fd12::1', '::ffff:203.0.113.8', ''), '203.0.113.8')
  t.is(proxies.clientAddress('203.0.113.1', '10.9.9.9', '10.9.9.9'), '203.0.113.1', 'an untrusted peer')
  t.is(new TrustedProxies([]).clientAddress('127.0.0.1', '203.0.113.7', ''), '127.0.0.1', 'off by default')
})

test('RatePerSecond (handshakes per address) counts per key in one-second windows; 0 is no limit', t => {
  const rate = new RatePerSecond(2)
  t.deepEqual(
    [rate.admits('a', 0), rate.admits('a', 10), rate.admits('a', 20), rate.admits('b', 30)],
    [true, true, false, true],
  )
  t.true(rate.admits('a', 1000), 'a new window')
  const unlimited = new RatePerSecond(0)
  for (let i = 0; i < 1000; i++) t.true(unlimited.admits('a', 0))
})

test('RatePerSecond forgets its keys once a second passes without events', async t => {
  const rate = new RatePerSecond(2)
  for (const key of ['a', 'b', 'c']) rate.admits(key)
  t.is(rate.size, 3)
  await eventually(() => rate.size === 0, { what: 'the last window to be forgotten', timeoutMs: 5000 })
  t.true(rate.admits('a'), 'a new window')
})
