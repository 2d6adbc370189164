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
import { docVectors } from '../../helpers/doc-vectors.js'

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex')
const message = (data: string | Buffer): Packet => ({ type: 'message', data })

/** A packet as the vectors write it: a text packet, or `{"bytes": hex}` binary data. */
const outPacket = (value: unknown): OutPacket =>
  typeof value === 'string' ? value : hex((value as { bytes: string }).bytes)
const dataOf = (value: unknown): string | Buffer =>
  typeof value === 'string' ? value : hex((value as { bytes: string }).bytes)

// docs/consumer-protocol.md §2: the text, the revision, the packet's type and data.
test('text packets: type digit and data; b for base64 binary', t => {
  for (const [text, revision, type, data] of docVectors('consumer-protocol', 'eio-text-packets'))
    t.deepEqual(
      decodeTextPacket(text as string, revision as Revision),
      { type, data: dataOf(data) } as Packet,
      String(text),
    )
})

test('text packets: a first character outside 0-6 is a parse error (docs/consumer-protocol.md §2)', t => {
  for (const [text] of docVectors('consumer-protocol', 'eio-bad-text-packets'))
    for (const revision of text === 'bxAQID' ? ([3] as const) : ([3, 4] as const))
      t.true(
        decodeTextPacket(text as string, revision) instanceof SnapperError,
        `${JSON.stringify(text)} v${revision}`,
      )
  t.is((decodeTextPacket('abc', 4) as SnapperError).code, 'PARSE_ERROR')
})

// docs/consumer-protocol.md §2: binary data as sent, and back
test('binary data: the websocket frame or its base64 form, per revision and b64 (W3-1, W3-2, W4-1, W4-2)', t => {
  for (const [title, revision, isB64, data, frame] of docVectors('consumer-protocol', 'eio-binary-frames')) {
    const sent = encodeBinaryFrame(hex(data as string), revision as Revision, isB64 as boolean)
    t.deepEqual(sent, dataOf(frame), String(title))
    const decoded =
      typeof sent === 'string'
        ? decodeTextPacket(sent, revision as Revision)
        : decodeBinaryPacket(sent, revision as Revision)
    t.deepEqual(decoded, message(hex(data as string)), String(title))
  }
  t.deepEqual(decodeBinaryPacket(hex('04 01 02 03'), 3), message(hex('01 02 03')))
  t.true(decodeBinaryPacket(hex('09 01'), 3) instanceof SnapperError)
  t.true(decodeBinaryPacket(Buffer.alloc(0), 3) instanceof SnapperError)
  t.deepEqual(decodeBinaryPacket(Buffer.alloc(0), 4), message(Buffer.alloc(0)))
})

// docs/consumer-protocol.md §4.1: v3 text payloads, lengths in UTF-16 code units

for (const [name, wire, packets] of docVectors('consumer-protocol', 'eio-v3-text-payloads')) {
  const out = (packets as unknown[]).map(outPacket)
  test(`v3 text payload ${String(name)}: encodes and decodes`, t => {
    t.is(encodeTextPayload(out, 3), wire as string)
    t.deepEqual(decodeTextPayload(wire as string, 3), out.map(toPacket))
  })
}

test('v3 text payload: bad lengths, empty payloads and bad packets are parse errors', t => {
  for (const [wire] of docVectors('consumer-protocol', 'eio-v3-bad-text-payloads'))
    t.true(decodeTextPayload(wire as string, 3) instanceof SnapperError, JSON.stringify(wire))
  t.deepEqual(
    decodeTextPayload('0:2:4a', 3),
    [message('a')],
    'empty items are skipped, as engine.io-parser 2 does',
  )
})

// docs/consumer-protocol.md §4.2: v3 binary payloads, lengths in bytes

for (const [name, wire, packets] of docVectors('consumer-protocol', 'eio-v3-binary-payloads')) {
  const out = (packets as unknown[]).map(outPacket)
  test(`v3 binary payload ${String(name)}: encodes and decodes`, t => {
    t.deepEqual(encodeBinaryPayload(out), hex(wire as string))
    t.deepEqual(decodeBinaryPayload(hex(wire as string)), out.map(toPacket))
  })
}

test('v3 binary payload: broken items are parse errors', t => {
  for (const [wire] of docVectors('consumer-protocol', 'eio-v3-bad-binary-payloads'))
    t.true(decodeBinaryPayload(hex(wire as string)) instanceof SnapperError, wire as string)
  t.true(
    decodeBinaryPayload(Buffer.concat([hex('00'), Buffer.alloc(11, 1), hex('ff')])) instanceof SnapperError,
  )
})

// docs/consumer-protocol.md §4.3: record-separated, binary always base64

for (const [name, wire, packets] of docVectors('consumer-protocol', 'eio-v4-payloads')) {
  const out = (packets as unknown[]).map(outPacket)
  test(`v4 payload ${String(name)}: encodes and decodes`, t => {
    t.is(encodeTextPayload(out, 4), wire as string)
    t.deepEqual(decodeTextPayload(wire as string, 4), out.map(toPacket))
  })
}

test('v4 payload: an empty payload or any bad packet is a parse error', t => {
  for (const [wire] of docVectors('consumer-protocol', 'eio-v4-bad-payloads'))
    t.true(decodeTextPayload(wire as string, 4) instanceof SnapperError, JSON.stringify(wire))
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
