/**
 * The token verifier: what each role accepts and refuses, with the exact
 * reason, for tokens signed here, by jsonwebtoken and by snapper-producer's
 * published signer (docs/producer-protocol.md §4).
 */
import { createHmac } from 'node:crypto'
import test from 'ava'
import jwt from 'jsonwebtoken'
import { consumerIdOf, refusalCode, Tokens, tokensOf, userIdOf, type Refusal } from '../../src/auth/token.js'
import { docVectors } from '../helpers/doc-vectors.js'
import { defaults } from '../../src/config/defaults.js'

const SECRET = 'a secret of at least thirty-two bytes'
const USER = '55a07f2dee06c78e1357b0ad'
const tokens = new Tokens([SECRET])
const inSec = (sec: number): number => Math.floor(Date.now() / 1000) + sec

/** A JWS of any header and payload text, signed with `secret` (HMAC of `hash`). */
function forge(header: unknown, payload: unknown, secret = SECRET, hash = 'sha256'): string {
  const part = (value: unknown) =>
    Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
  const input = `${part(header)}.${part(payload)}`
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
}

const refused = (reason: string, isWrongRole = false): Refusal => ({ ok: false, reason, isWrongRole })
const MALFORMED = 'Error: Malformed token: not a compact JWS (header.payload.signature)'

test('signed here, by jsonwebtoken, or by snapper-producer (docs/producer-protocol.md §4): verified with its claims', t => {
  t.deepEqual(tokens.verify(tokens.sign({ id: 'p' }, 60)), { ok: true, claims: { exp: inSec(60), id: 'p' } })
  const byJwt = jwt.sign({ userId: USER }, SECRET, { expiresIn: 60 })
  t.like(tokens.verifyConsumer(byJwt), { ok: true, claims: { userId: USER } })
  const vector =
    'eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlkIjoicHJvZC0xIn0.UDegbwpUkrlPY4iK0afhcnScd20G_G0CqcSL48xBxnE'
  t.deepEqual(new Tokens(['tokenSecretXXX']).verifyProducer(vector), {
    ok: true,
    claims: { exp: 4102444800, id: 'prod-1' },
  })
})

test('every secret verifies, the first signs (rotation)', t => {
  const rotated = new Tokens(['new secret', SECRET])
  t.true(rotated.verify(tokens.sign({ id: 'p' })).ok)
  t.true(tokens.verify(new Tokens([SECRET, 'old']).sign({ id: 'p' })).ok)
  t.deepEqual(tokens.verify(rotated.sign({ id: 'p' })), refused('Error: Invalid signature'))
})

test('malformed tokens: refused with what is wrong, never thrown', t => {
  const exp = inSec(60)
  const cases: [token: unknown, reason: string][] = [
    [undefined, 'Error: Token required'],
    ['', 'Error: Token required'],
    [42, 'Error: Token required'],
    [{ token: 'x' }, 'Error: Token required'],
    ['e30.eA.', MALFORMED],
    ['e30.eA.c2ln', 'Error: Algorithm not allowed: none given (expected HS256)'],
    ['eyJhbGciOiJIUzI1NiJ9.eA.c2ln', 'Error: Malformed token: the payload is not a JSON object'],
    [forge({ alg: 'HS256' }, 'null'), 'Error: Malformed token: the payload is not a JSON object'],
    [forge({ alg: 'HS256' }, '[]'), 'Error: Malformed token: the payload is not a JSON object'],
    [forge({ alg: 'HS256' }, '"str"'), 'Error: Malformed token: the payload is not a JSON object'],
    [forge('{alg', { exp }), 'Error: Malformed token: the header is not a JSON object'],
    [forge('null', { exp }), 'Error: Malformed token: the header is not a JSON object'],
    ['eyJhbGciOiJIUzI1NiJ9.e30', MALFORMED],
    [`${tokens.sign({ id: 'p' })}.e30`, MALFORMED],
    ['..', MALFORMED],
    [`${tokens.sign({ id: 'p' }).split('.').slice(0, 2).join('.')}.`, MALFORMED],
    [
      `${tokens.sign({ id: 'p' }).split('.').slice(0, 2).join('.')}.${'A'.repeat(4096)}`,
      'Error: Invalid signature',
    ],
    [`e30\u0000.e30\u0007.\r\n`, MALFORMED],
    ['eyJhbGciOiJIUzI1NiJ9.e30=.abc', MALFORMED],
    [forge({ alg: 'HS256', crit: ['b64'] }, { exp }), 'Error: Malformed token: unsupported "crit" header'],
    [forge({ alg: 'HS256' }, { exp: '2100-01-01' }), 'Error: Malformed token: exp is not a number'],
    [forge({ alg: 'HS256' }, { exp, nbf: 'now' }), 'Error: Malformed token: nbf is not a number'],
  ]
  for (const [token, reason] of cases) {
    t.deepEqual(tokens.verify(token), refused(reason), String(token))
    t.deepEqual(tokens.verifyOperator(token), refused(reason), `operator: ${String(token)}`)
  }
})

test('forged tokens: alg none, another algorithm, a wrong secret', t => {
  const exp = inSec(60)
  const unsigned = (header: unknown) =>
    `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify({ exp, id: 'p' })).toString('base64url')}.`
  t.deepEqual(tokens.verify(unsigned({ alg: 'none' })), refused(MALFORMED))
  t.deepEqual(
    tokens.verify(forge({ alg: 'none' }, { exp })),
    refused('Error: Algorithm not allowed: "none" (expected HS256)'),
  )
  t.deepEqual(
    tokens.verify(forge({ typ: 'JWT' }, { exp })),
    refused('Error: Algorithm not allowed: none given (expected HS256)'),
  )
  t.deepEqual(
    tokens.verify(jwt.sign({ id: 'p' }, SECRET, { algorithm: 'HS512', expiresIn: 60 })),
    refused('Error: Algorithm not allowed: "HS512" (expected HS256)'),
  )
  t.deepEqual(
    tokens.verify(forge({ alg: 'HS256' }, { exp }, SECRET, 'sha512')),
    refused('Error: Invalid signature'),
    'an HS512 signature under an HS256 header',
  )
  t.deepEqual(
    tokens.verify(forge({ alg: 'x'.repeat(100) }, { exp })),
    refused(`Error: Algorithm not allowed: "${'x'.repeat(31)}… (expected HS256)`),
  )
  t.deepEqual(
    tokens.verify(jwt.sign({ id: 'p' }, 'another secret', { expiresIn: 60 })),
    refused('Error: Invalid signature'),
  )
  const hs512 = new Tokens([SECRET], { algorithm: 'HS512' })
  t.true(hs512.verify(jwt.sign({ id: 'p' }, SECRET, { algorithm: 'HS512', expiresIn: 60 })).ok)
  t.false(hs512.verify(tokens.sign({ id: 'p' })).ok)
})

test('one spelling per token: a signature whose last character differs only in its unused bits is refused', t => {
  // 32 bytes in base64url are 43 characters: the last carries 4 bits and 2 unused ones.
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const token = tokens.sign({ id: 'p' })
  t.true(tokens.verify(token).ok)
  const last = ALPHABET.indexOf(token.at(-1)!)
  let others = 0
  for (let bits = 1; bits < 4; bits++) {
    const variant = token.slice(0, -1) + ALPHABET[last ^ bits]
    t.deepEqual(
      Buffer.from(variant.split('.')[2]!, 'base64url'),
      Buffer.from(token.split('.')[2]!, 'base64url'),
      'the same signature bytes',
    )
    t.deepEqual(tokens.verify(variant), refused('Error: Invalid signature'))
    others++
  }
  t.is(others, 3)
})

test("time: expired and exp-less tokens say so, with the original's text; nbf; skew; the lifetime bound", t => {
  t.deepEqual(
    tokens.verify(jwt.sign({ exp: 1000, id: 'p' }, SECRET)),
    refused(`Error: Expired: ${new Date(1000 * 1000).toString()}`),
  )
  t.deepEqual(
    tokens.verify(jwt.sign({ exp: 0, id: 'p' }, SECRET)),
    refused(`Error: Expired: ${new Date(0).toString()}`),
  )
  t.deepEqual(
    tokens.verify(jwt.sign({ id: 'p' }, SECRET, { noTimestamp: true })),
    refused('Error: No expiry: the token has no exp claim'),
  )
  const early = jwt.sign({ id: 'p', nbf: inSec(30) }, SECRET, { expiresIn: 60 })
  t.regex((tokens.verify(early) as { reason: string }).reason, /^Error: Not yet valid: /)

  const expiredAWhileAgo = tokens.sign({ id: 'p' }, -5)
  t.false(tokens.verify(expiredAWhileAgo).ok)
  const lenient = new Tokens([SECRET], { clockSkewSec: 60 })
  t.true(lenient.verify(expiredAWhileAgo).ok)
  t.true(lenient.verify(early).ok)
  t.false(lenient.verify(tokens.sign({ id: 'p' }, -120)).ok)

  const bounded = new Tokens([SECRET], { maxLifetimeSec: 3600 })
  t.true(bounded.verify(tokens.sign({ id: 'p' }, 3000)).ok)
  const long = tokens.sign({ id: 'p' }, 2 * 24 * 3600)
  t.regex(
    (bounded.verify(long) as { reason: string }).reason,
    /^Error: Lifetime too long: expires .*, over 3600 s from now$/,
  )
})

test('roles: a producer carries no userId, a consumer a 24-hex-digit one, an operator name "snapper" and no userId', t => {
  const consumer = tokens.sign({ userId: USER })
  const producer = tokens.sign({ id: 'p' })
  const operator = tokens.signOperator()
  const notProducer = refused('Error: Consumer token: a token with userId cannot act as a producer', true)
  const notConsumer = refused(
    'Error: Not a consumer token: userId (24 lowercase hex digits) is required',
    true,
  )
  const notOperator = refused('Error: Not an operator token: name "snapper" is required', true)

  t.true(tokens.verifyProducer(producer).ok)
  t.true(tokens.verifyProducer(operator).ok, 'operators may use the producer API')
  t.deepEqual(tokens.verifyProducer(consumer), notProducer)
  t.deepEqual(tokens.verifyProducer(tokens.sign({ userId: null, id: 'p' })), notProducer)

  t.like(tokens.verifyConsumer(consumer), { ok: true, claims: { userId: USER } })
  t.deepEqual(tokens.verifyConsumer(producer), notConsumer)
  t.deepEqual(tokens.verifyConsumer(tokens.sign({ userId: USER.toUpperCase() })), notConsumer)

  t.true(tokens.verifyOperator(operator).ok)
  t.deepEqual(tokens.verifyOperator(producer), notOperator)
  t.deepEqual(tokens.verifyOperator(consumer), notOperator)
  t.deepEqual(
    tokens.verifyOperator(tokens.sign({ name: 'snapper', userId: USER })),
    refused('Error: Not an operator token: an operator token cannot carry userId', true),
  )
  t.is(refusalCode(notOperator), 'WRONG_ROLE')
  t.is(refusalCode(refused('Error: Invalid signature')), 'UNAUTHORIZED')
})

test('operatorSecrets: operator tokens verify with them only; a producer secret signs no operator token', t => {
  const split = tokensOf({
    ...defaults,
    tokenSecrets: [SECRET],
    operatorSecrets: ['operators only, 32 bytes or more'],
  })
  const operator = split.signOperator()
  t.true(split.verifyOperator(operator).ok)
  t.deepEqual(split.verifyProducer(operator), refused('Error: Invalid signature'))
  t.deepEqual(split.verifyConsumer(operator), refused('Error: Invalid signature'))
  t.deepEqual(
    split.verifyOperator(split.sign({ name: 'snapper' })),
    refused('Error: Not an operator token: signed with a producer secret', true),
  )
  t.deepEqual(
    split.verifyOperator(new Tokens(['stranger']).signOperator()),
    refused('Error: Invalid signature'),
  )
  t.is(tokensOf({ ...defaults, tokenSecrets: [SECRET] }).verifyOperator(tokens.signOperator()).ok, true)
})

test('consumerIdOf: the original ids (docs/consumer-protocol.md §11)', t => {
  for (const [userId, exp, source, id] of docVectors('consumer-protocol', 'consumer-ids')) {
    const claims = {
      userId: userId as string,
      exp: exp as number,
      ...(source !== null && { source: source as string }),
    }
    t.is(consumerIdOf(claims), id as string, JSON.stringify(claims))
  }
})

test('consumerIdOf: a source that is not a string counts as "t" and cannot throw', t => {
  const exp = 4102444800
  t.is(consumerIdOf({ userId: USER, exp, source: 'ios' }), 'i.VaB_Le4Gx44TV7Ct9IZXAA~~')
  t.is(consumerIdOf({ userId: USER, exp }), 't.VaB_Le4Gx44TV7Ct9IZXAA~~')
  const hostile = { userId: USER, exp, source: JSON.parse('{"toString": 1}') as string }
  t.is(consumerIdOf(hostile), 't.VaB_Le4Gx44TV7Ct9IZXAA~~')
})

test('userIdOf reads the user id back out of a consumer id, whatever the exp and platform', t => {
  for (const exp of [1, 255, 4102444800, 2 ** 40 + 1])
    for (const source of ['ios', 'android', 'web', undefined])
      t.is(userIdOf(consumerIdOf({ userId: USER, exp, source })), USER, `${exp} ${source}`)
  t.is(userIdOf('w.short'), undefined)
  t.is(userIdOf(''), undefined)
})
