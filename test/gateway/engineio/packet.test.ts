import test from 'ava'
import fc from 'fast-check'
import { SnapperError } from '../../../src/errors.js'
import {
  type OutPacket,
  PACKET_TYPES,
  type Packet,
  type Revision,
  decodeBinaryPacket,
  decodeBinaryPayload,
  decodeTextPacket,
  decodeTextPayload,
  encodeBinaryFrame,
  encodeBinaryPayload,
  encodeMessage,
  encodeTextPayload,
} from '../../../src/gateway/engineio/packet.js'

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex')
const message = (data: string | Buffer): Packet => ({ type: 'message', data })

// §2.2 text packets

test('text packets: type digit and data', t => {
  t.deepEqual(decodeTextPacket('4hello', 4), message('hello'))
  t.deepEqual(decodeTextPacket('2', 3), { type: 'ping', data: '' })
  t.deepEqual(decodeTextPacket('3probe', 4), { type: 'pong', data: 'probe' })
  t.deepEqual(decodeTextPacket('2probe', 3), { type: 'ping', data: 'probe' })
  t.deepEqual(decodeTextPacket('5', 4), { type: 'upgrade', data: '' })
  t.deepEqual(decodeTextPacket('6', 3), { type: 'noop', data: '' })
  t.deepEqual(decodeTextPacket('0{"sid":"x"}', 4), { type: 'open', data: '{"sid":"x"}' })
})

test('text packets: a first character outside 0-6 is a parse error (spec §2.2 `abc`)', t => {
  for (const text of ['abc', '', '7', '9x', ' 4hi', '/', ':'])
    for (const revision of [3, 4] as const)
      t.true(decodeTextPacket(text, revision) instanceof SnapperError, `${JSON.stringify(text)} v${revision}`)
  t.is((decodeTextPacket('abc', 4) as SnapperError).code, 'PARSE_ERROR')
})

// §2.3 binary data

test('v3 binary: websocket frame = type byte + data; base64 form b<type><b64> (W3-1, W3-2)', t => {
  t.deepEqual(decodeBinaryPacket(hex('04 01 02 03'), 3), message(hex('01 02 03')))
  t.deepEqual(encodeBinaryFrame(hex('01 02 03'), 3, false), hex('04 01 02 03'))
  t.deepEqual(decodeTextPacket('b4AQIDBA==', 3), message(hex('01 02 03 04')))
  t.deepEqual(decodeTextPacket('b4AQID', 3), message(hex('01 02 03')))
  t.is(encodeBinaryFrame(hex('09 08'), 3, true), 'b4CQg=')
  t.true(decodeBinaryPacket(hex('09 01'), 3) instanceof SnapperError)
  t.true(decodeBinaryPacket(Buffer.alloc(0), 3) instanceof SnapperError)
  t.true(decodeTextPacket('bxAQID', 3) instanceof SnapperError)
})

test('v4 binary: websocket frame = raw data; base64 form b<b64> (W4-1, W4-2)', t => {
  t.deepEqual(decodeBinaryPacket(hex('01 02 03'), 4), message(hex('01 02 03')))
  t.deepEqual(encodeBinaryFrame(hex('01 02 03'), 4, false), hex('01 02 03'))
  t.deepEqual(decodeTextPacket('bAQIDBA==', 4), message(hex('01 02 03 04')))
  t.deepEqual(decodeTextPacket('bAQID', 4), message(hex('01 02 03')))
  t.is(encodeBinaryFrame(hex('09 08'), 4, true), 'bCQg=')
  t.deepEqual(decodeBinaryPacket(Buffer.alloc(0), 4), message(Buffer.alloc(0)))
})

// §4.2 v3 text payloads: lengths in UTF-16 code units

const v3Vectors: Array<[string, string, OutPacket[]]> = [
  ['P3-3 POST', '6:4hello2:4€', ['4hello', '4€']],
  ['P3-4 GET', '11:4echo:hello7:4echo:€', ['4echo:hello', '4echo:€']],
  ['P3-8 POST (2 UTF-16 units)', '3:4😀', ['4😀']],
  ['P3-8 GET', '8:4echo:😀', ['4echo:😀']],
  [
    '§4.2 publish frame',
    '81:4{"jsonrpc":"2.0","id":"pvtt:1","method":"publish","params":["{\\"e\\":\\"任务😀\\"}"]}',
    ['4{"jsonrpc":"2.0","id":"pvtt:1","method":"publish","params":["{\\"e\\":\\"任务😀\\"}"]}'],
  ],
  ['P3-7 binary, b64', '10:b4AQIDBA==', [hex('01 02 03 04')]],
  ['P3-5 ping', '1:2', ['2']],
  ['P3-5 pong', '1:3', ['3']],
  ['P3-12 noop', '1:6', ['6']],
  ['P3-13 close', '1:1', ['1']],
  ['§3.2 open, then a message', '5:0{}ab6:4hello', ['0{}ab', '4hello']],
  [
    'P3-2 handshake',
    '124:0{"sid":"t.VaB_Le4Gx44TV7Ct9IZXAA~~","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}',
    [
      '0{"sid":"t.VaB_Le4Gx44TV7Ct9IZXAA~~","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}',
    ],
  ],
]

for (const [name, wire, packets] of v3Vectors) {
  test(`v3 text payload ${name}: encodes and decodes`, t => {
    t.is(encodeTextPayload(packets, 3), wire)
    t.deepEqual(decodeTextPayload(wire, 3), packets.map(toPacket))
  })
}

test('v3 text payload: bad lengths, empty payloads and bad packets are parse errors', t => {
  for (const wire of [
    '',
    'abc',
    '6:4hello2:4',
    '3:4€',
    ':4',
    'x:4a',
    '1:',
    '3:4😀1',
    '1:7',
    '99999999999:4',
    '-1:4',
  ])
    t.true(decodeTextPayload(wire, 3) instanceof SnapperError, JSON.stringify(wire))
  t.deepEqual(
    decodeTextPayload('0:2:4a', 3),
    [message('a')],
    'empty items are skipped, as engine.io-parser 2 does',
  )
})

// §4.3 v3 binary payloads: lengths in bytes

const binaryVectors: Array<[string, string, OutPacket[]]> = [
  ['P3-9 POST', '00 06 ff 34 68 65 6c 6c 6f  01 05 ff 04 01 02 03 04', ['4hello', hex('01 02 03 04')]],
  [
    'P3-9 GET',
    '00 01 01 ff 34 65 63 68 6f 3a 68 65 6c 6c 6f  01 05 ff 04 01 02 03 04',
    ['4echo:hello', hex('01020304')],
  ],
  ['§4.3 € POST', '00 04 ff 34 e2 82 ac  01 02 ff 04 09', ['4€', hex('09')]],
  ['§4.3 € GET', '00 09 ff 34 65 63 68 6f 3a e2 82 ac  01 02 ff 04 09', ['4echo:€', hex('09')]],
]

for (const [name, wire, packets] of binaryVectors) {
  test(`v3 binary payload ${name}: encodes and decodes`, t => {
    t.deepEqual(encodeBinaryPayload(packets), hex(wire))
    t.deepEqual(decodeBinaryPayload(hex(wire)), packets.map(toPacket))
  })
}

test('v3 binary payload: broken items are parse errors', t => {
  for (const wire of [
    '',
    '02 01 ff 34',
    '00 ff 34',
    '00 01',
    '00 05 ff 34',
    '00 0a ff 34',
    '01 01 ff 09',
    '00 01 ff 37',
  ])
    t.true(decodeBinaryPayload(hex(wire)) instanceof SnapperError, wire)
  t.true(
    decodeBinaryPayload(Buffer.concat([hex('00'), Buffer.alloc(11, 1), hex('ff')])) instanceof SnapperError,
  )
})

// §4.4 v4 payloads: record-separated, binary always base64

test('v4 payload: P4-2 and P4-3', t => {
  t.deepEqual(decodeTextPayload('4hello\x1e4€', 4), [message('hello'), message('€')])
  t.is(encodeTextPayload(['4echo:hello', '4echo:€'], 4), '4echo:hello\x1e4echo:€')
  t.deepEqual(decodeTextPayload('bAQIDBA==', 4), [message(hex('01 02 03 04'))])
  t.is(encodeTextPayload([hex('01 02 03 04')], 4), 'bAQIDBA==')
  t.is(encodeTextPayload(['0{}', '4a', '2', '6'], 4), '0{}\x1e4a\x1e2\x1e6')
})

test('v4 payload: an empty payload or any bad packet is a parse error', t => {
  for (const wire of ['', '4a\x1e', '\x1e4a', '4a\x1eabc', 'x', '4a\x1e\x1e4b'])
    t.true(decodeTextPayload(wire, 4) instanceof SnapperError, JSON.stringify(wire))
})

test('encodeMessage: the packet text, and its UTF-8 bytes made once', t => {
  const encoded = encodeMessage('€😀')
  t.is(encoded.packet, '4€😀')
  t.deepEqual(encoded.bytes, Buffer.from('4€😀'))
  t.is(encoded.bytes, encoded.bytes)
})

// Properties

function toPacket(out: OutPacket): Packet {
  if (typeof out !== 'string') return message(out)
  return { type: PACKET_TYPES[Number(out[0])]!, data: out.slice(1) }
}

const anyText = fc.string({ unit: 'binary', maxLength: 40 })
const textPacket = (text: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.tuple(fc.integer({ min: 0, max: 6 }), text).map(([type, data]) => `${type}${data}`)
const binaryData = fc.uint8Array({ maxLength: 40 }).map(bytes => Buffer.from(bytes))

test('property: v3 text payloads round-trip, binary data as base64', t => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(textPacket(anyText), binaryData), { minLength: 1, maxLength: 8 }),
      packets => {
        t.deepEqual(decodeTextPayload(encodeTextPayload(packets, 3), 3), packets.map(toPacket))
      },
    ),
  )
})

test('property: v3 binary payloads round-trip (text as UTF-8)', t => {
  const wellFormed = fc.string({ unit: 'grapheme', maxLength: 30 })
  fc.assert(
    fc.property(
      fc.array(fc.oneof(textPacket(wellFormed), binaryData), { minLength: 1, maxLength: 8 }),
      packets => {
        t.deepEqual(decodeBinaryPayload(encodeBinaryPayload(packets)), packets.map(toPacket))
      },
    ),
  )
})

test('property: v4 payloads round-trip (the separator cannot occur in text: the protocol has no escape)', t => {
  const noSeparator = anyText.map(text => text.replaceAll('\x1e', ''))
  fc.assert(
    fc.property(
      fc.array(fc.oneof(textPacket(noSeparator), binaryData), { minLength: 1, maxLength: 8 }),
      packets => {
        t.deepEqual(decodeTextPayload(encodeTextPayload(packets, 4), 4), packets.map(toPacket))
      },
    ),
  )
})

test('property: binary websocket frames round-trip in both revisions', t => {
  fc.assert(
    fc.property(binaryData, fc.constantFrom<Revision>(3, 4), fc.boolean(), (data, revision, isB64) => {
      const frame = encodeBinaryFrame(data, revision, isB64)
      const decoded =
        typeof frame === 'string' ? decodeTextPacket(frame, revision) : decodeBinaryPacket(frame, revision)
      t.deepEqual(decoded, message(data))
    }),
  )
})

test('property: arbitrary strings and bytes never throw; they decode or give a parse error', t => {
  const isResult = (result: unknown): boolean => result instanceof SnapperError || Array.isArray(result)
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), fc.uint8Array(), (text, bytes) => {
      for (const revision of [3, 4] as const) {
        if (!isResult(decodeTextPayload(text, revision))) return false
        const packet = decodeTextPacket(text, revision)
        if (!(packet instanceof SnapperError) && typeof packet.type !== 'string') return false
        decodeBinaryPacket(Buffer.from(bytes), revision)
      }
      return isResult(decodeBinaryPayload(Buffer.from(bytes)))
    }),
    { numRuns: 2000 },
  )
  // Strings shaped like payloads reach deeper than random ones.
  const payloadish = fc
    .array(fc.oneof(fc.constantFrom(':', '\x1e', 'b', '4', '1', '9', '€', '😀'), fc.nat(20).map(String)), {
      maxLength: 20,
    })
    .map(parts => parts.join(''))
  fc.assert(
    fc.property(
      payloadish,
      text => isResult(decodeTextPayload(text, 3)) && isResult(decodeTextPayload(text, 4)),
    ),
  )
  t.pass()
})
