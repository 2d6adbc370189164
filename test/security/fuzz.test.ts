/**
 * Random input against everything that reads what a stranger sends: the
 * token verifier, the RESP decoder, the JSON-RPC readers and the Engine.IO
 * packet and payload decoders of both revisions. None may throw, and every
 * refusal must be one of the documented ones (README "Tokens", ERRORS).
 */
import { createHmac } from 'node:crypto'
import test from 'ava'
import fc from 'fast-check'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import { ERRORS, SnapperError } from '../../src/errors.js'
import { plainAckId } from '../../src/gateway/consumer.js'
import {
  decodeBinaryPacket,
  decodeBinaryPayload,
  decodeTextPacket,
  decodeTextPayload,
  PACKET_TYPES,
  type Packet,
} from '../../src/gateway/engineio/packet.js'
import { parseMessage } from '../../src/jsonrpc.js'
import { isFramingError, RespDecoder } from '../../src/producer/resp.js'
import { SECRET } from './tokens.js'

const RUNS = { numRuns: 2000 }
const tokens = new Tokens([SECRET], { operatorSecrets: ['operators: a secret of their own, 32+'] })

/** Every reason a token can be refused with: the table in README "Tokens". */
const DOCUMENTED_REASONS = [
  /^Error: Token required$/,
  /^Error: Malformed token: (not a compact JWS \(header\.payload\.signature\)|the header is not a JSON object|the payload is not a JSON object|unsupported "crit" header|exp is not a number|nbf is not a number)$/,
  /^Error: Algorithm not allowed: (none given|.{1,32}…?) \(expected HS256\)$/,
  /^Error: Invalid signature$/,
  /^Error: No expiry: the token has no exp claim$/,
  /^Error: Expired: /,
  /^Error: Not yet valid: /,
  /^Error: Consumer token: a token with userId cannot act as a producer$/,
  /^Error: Not a consumer token: userId \(24 lowercase hex digits\) is required$/,
  /^Error: Not an operator token: (name "snapper" is required|an operator token cannot carry userId|signed with a producer secret)$/,
]

function assertVerifierSafe(token: unknown): void {
  for (const verify of ['verify', 'verifyProducer', 'verifyConsumer', 'verifyOperator'] as const) {
    const verified = tokens[verify](token)
    if (!verified.ok && !DOCUMENTED_REASONS.some(reason => reason.test(verified.reason)))
      throw new Error(`${verify}: undocumented reason ${JSON.stringify(verified.reason)}`)
  }
  const consumer = tokens.verifyConsumer(token)
  if (consumer.ok) consumerIdOf(consumer.claims) // the handshake's next step
}

const base64url = (text: string): string => Buffer.from(text).toString('base64url')
const signed = (header: string, payload: string, secret = SECRET): string => {
  const input = `${base64url(header)}.${base64url(payload)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

test('token verifier: random strings and random bytes never throw; every refusal is documented', t => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), assertVerifierSafe), RUNS)
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), bytes =>
      assertVerifierSafe(Buffer.from(bytes).toString('latin1')),
    ),
    RUNS,
  )
  fc.assert(fc.property(fc.anything(), assertVerifierSafe), RUNS)
  t.pass()
})

const now = Math.floor(Date.now() / 1000)

test('token verifier: three base64url parts of random bytes or random JSON, even correctly signed, never throw', t => {
  const part = fc.oneof(
    fc.uint8Array({ maxLength: 60 }).map(bytes => Buffer.from(bytes).toString('latin1')),
    fc.jsonValue().map(value => JSON.stringify(value)),
  )
  const header = fc.oneof(
    part,
    fc.dictionary(fc.constantFrom('alg', 'typ', 'crit', 'kid'), fc.jsonValue()).map(h => JSON.stringify(h)),
    fc.constant('{"alg":"HS256"}'),
  )
  const claims = fc
    .record(
      {
        exp: fc.oneof(fc.integer({ min: now, max: now + 10 ** 9 }), fc.double(), fc.jsonValue()),
        nbf: fc.oneof(fc.double(), fc.jsonValue()),
        userId: fc.oneof(
          fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 24, maxLength: 24 }),
          fc.jsonValue(),
        ),
        name: fc.oneof(fc.constant('snapper'), fc.jsonValue()),
        source: fc.jsonValue(),
      },
      { requiredKeys: [] },
    )
    .map(c => JSON.stringify(c))
  fc.assert(
    fc.property(header, fc.oneof(part, claims), fc.boolean(), (h, p, isSigned) =>
      assertVerifierSafe(isSigned ? signed(h, p) : `${base64url(h)}.${base64url(p)}.${base64url(p)}`),
    ),
    RUNS,
  )
  t.pass()
})

test('RESP decoder: random bytes in random chunks never throw; what fails is FRAME_TOO_LARGE or BAD_FRAMING, once and for good', t => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }),
      fc.integer({ min: 1, max: 256 }),
      (chunks, maxFrameBytes) => {
        const decoder = new RespDecoder(maxFrameBytes)
        for (const chunk of chunks) {
          decoder.push(Buffer.from(chunk))
          for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
            if (!isFramingError(frame)) continue
            if (frame.code !== 'FRAME_TOO_LARGE' && frame.code !== 'BAD_FRAMING') throw new Error(frame.code)
            decoder.push(Buffer.from('$1\r\na\r\n'))
            if (decoder.next() !== frame)
              throw new Error('a framing error must stick: the stream cannot resync')
            return
          }
        }
      },
    ),
    RUNS,
  )
  t.pass()
})

test('JSON-RPC readers: random bytes and random JSON never throw; producers get a documented code', t => {
  const readBoth = (text: string | Buffer): void => {
    const message = parseMessage(text)
    if (message.kind === 'invalid' && !(message.code in ERRORS)) throw new Error(message.code)
    const ackId = plainAckId(text.toString())
    if (ackId !== undefined && (ackId === '' || ackId.includes('"'))) throw new Error(ackId)
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), bytes => readBoth(Buffer.from(bytes))),
    RUNS,
  )
  fc.assert(
    fc.property(fc.jsonValue(), value => readBoth(JSON.stringify(value))),
    RUNS,
  )
  fc.assert(
    fc.property(
      fc.record(
        {
          jsonrpc: fc.constant('2.0'),
          id: fc.jsonValue(),
          method: fc.jsonValue(),
          params: fc.jsonValue(),
          result: fc.jsonValue(),
        },
        { requiredKeys: [] },
      ),
      value => readBoth(JSON.stringify(value)),
    ),
    RUNS,
  )
  t.pass()
})

/** A decoder's answer: packets of known types, or the one documented refusal (PARSE_ERROR). */
function assertDecoded(result: Packet | Packet[] | SnapperError): void {
  if (result instanceof SnapperError) {
    if (result.code !== 'PARSE_ERROR') throw new Error(result.code)
    return
  }
  for (const packet of Array.isArray(result) ? result : [result])
    if (!PACKET_TYPES.includes(packet.type)) throw new Error(packet.type)
}

test('Engine.IO decoders, v3 and v4: random text and bytes as a packet or a payload never throw; refusals are PARSE_ERROR', t => {
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 120 }),
    fc
      .array(fc.tuple(fc.nat(40), fc.string({ maxLength: 20 })), { maxLength: 5 })
      .map(items => items.map(([length, data]) => `${length}:${data}`).join('')),
    fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }).map(items => items.join('\x1e')),
  )
  const bytes = fc.uint8Array({ maxLength: 120 }).map(b => Buffer.from(b))
  for (const revision of [3, 4] as const) {
    fc.assert(
      fc.property(text, bytes, (t3, b3) => {
        assertDecoded(decodeTextPacket(t3, revision))
        assertDecoded(decodeTextPayload(t3, revision))
        assertDecoded(decodeBinaryPacket(b3, revision))
      }),
      RUNS,
    )
  }
  const binaryPayload = fc.oneof(
    bytes,
    fc
      .array(
        fc.tuple(
          fc.constantFrom(0, 1, 2),
          fc.array(fc.nat(11), { maxLength: 12 }),
          fc.uint8Array({ maxLength: 20 }),
        ),
        {
          maxLength: 4,
        },
      )
      .map(items =>
        Buffer.concat(items.map(([kind, digits, body]) => Buffer.from([kind, ...digits, 0xff, ...body]))),
      ),
  )
  fc.assert(
    fc.property(binaryPayload, body => assertDecoded(decodeBinaryPayload(body))),
    RUNS,
  )
  t.pass()
})
