import test from 'ava'
import { addressGroup, PerAddress } from '../src/client-address.js'
import { UnauthenticatedProducers } from '../src/producer/admission.js'

test('addressGroup: IPv4 as itself, IPv4-mapped IPv6 as IPv4, IPv6 by its first bits; anything else as it is', t => {
  const cases: [address: string, bits: number, group: string, why?: string][] = [
    ['10.1.2.3', 64, '10.1.2.3'],
    ['::ffff:10.1.2.3', 64, '10.1.2.3'],
    ['0000:0000:0000:0000:0000:ffff:0a01:0203', 64, '10.1.2.3', 'as uWS spells it'],
    ['2001:db8:1:2:3:4:5:6', 64, '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd', 64, '2001:db8:1:2::/64', 'the same /64'],
    ['2001:db8:1:3::1', 64, '2001:db8:1:3::/64', 'the next /64'],
    ['2001:db8:1:2ff::1', 56, '2001:db8:1:200::/56'],
    ['2001:db8:1:ffff::', 48, '2001:db8:1::/48'],
    ['2001:db8:1:2:3:4:5:6', 60, '2001:db8:1::/60'],
    ['2001:db8::1', 128, '2001:db8::1', '128: each address apart'],
    ['::1', 64, '::/64'],
    ['fe80::1:2:3:4%eth0', 64, 'fe80::/64', 'a zone is no part of the network'],
    ['64:ff9b::1.2.3.4', 96, '64:ff9b::/96', 'an IPv4 tail'],
    ['64:ff9b::1.2.3.4', 112, '64:ff9b::102:0/112'],
    ...['', 'not an address', '1.2.3', '::g', '2001:db8::1::2'].map(
      (garbage): [string, number, string, string] => [garbage, 64, garbage, 'not an address: as it is'],
    ),
  ]
  for (const [address, bits, group, why] of cases) t.is(addressGroup(address, bits), group, why ?? address)
})

test('PerAddress: at most max per group, an IPv6 network counted as one; a give frees a place', t => {
  const perAddress = new PerAddress(2, 64)
  const a = perAddress.take('2001:db8:1:2::a')
  t.is(a, '2001:db8:1:2::/64')
  t.is(perAddress.take('2001:db8:1:2:ffff:ffff:ffff:ffff'), a)
  t.is(perAddress.take('2001:db8:1:2::c'), undefined, 'a third address of the same /64')
  t.is(perAddress.take('2001:db8:1:3::a'), '2001:db8:1:3::/64', 'another /64 has its own places')
  t.is(perAddress.take('127.0.0.1'), '127.0.0.1')
  perAddress.give(a!)
  t.is(perAddress.take('2001:db8:1:2::d'), a)
})

test('unauthenticated producers from one IPv6 /64 share its places; its places come back on release', t => {
  const producers = new UnauthenticatedProducers({
    maxUnauthenticatedProducers: 10,
    maxUnauthenticatedProducersPerAddress: 1,
    perAddressIpv6PrefixBits: 64,
  })
  const first = producers.admit('2001:db8:1:2::1')
  t.like(first, { group: '2001:db8:1:2::/64' })
  t.deepEqual(producers.admit('2001:db8:1:2::2'), { full: 'maxUnauthenticatedProducersPerAddress' })
  t.like(producers.admit('2001:db8:1:9::1'), { group: '2001:db8:1:9::/64' })
  t.is(producers.total, 2)
  if ('group' in first) producers.release(first.group)
  t.like(producers.admit('2001:db8:1:2::2'), { group: '2001:db8:1:2::/64' })
})
