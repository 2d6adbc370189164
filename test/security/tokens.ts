/**
 * The attacker's tokens, each with the reason every entry point must give
 * when it refuses it (README "Tokens"). Forged with plain crypto here and
 * with jsonwebtoken, never with the code under test.
 */
import { createHmac } from 'node:crypto'
import jwt from 'jsonwebtoken'

export const SECRET = 'security suite secret: 32 bytes or more'
export const VICTIM_USER = '5f0c1d2e3a4b5c6d7e8f9a0b'

const part = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** A JWS of any header and payload text, its HMAC (of `hash`) made with `secret`. */
export function forge(header: unknown, payload: unknown, secret = SECRET, hash = 'sha256'): string {
  const input = `${part(header)}.${part(payload)}`
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
}

const exp = (): number => Math.floor(Date.now() / 1000) + 3600
const HS256 = { alg: 'HS256', typ: 'JWT' }
const MALFORMED = 'Error: Malformed token: not a compact JWS (header.payload.signature)'
const BAD_PAYLOAD = 'Error: Malformed token: the payload is not a JSON object'
const valid = (): string => forge(HS256, { exp: exp(), id: 'p' })
const [validHead, validBody] = valid().split('.') as [string, string]

/** Tokens no entry point may accept: [what, token, the reason every entry point gives]. */
export function hostileTokens(): [what: string, token: string, reason: string][] {
  return [
    ["'e30.eA.' (a payload that is not JSON)", 'e30.eA.', MALFORMED],
    ['payload null', forge(HS256, 'null'), BAD_PAYLOAD],
    ['payload []', forge(HS256, '[]'), BAD_PAYLOAD],
    ['payload "str"', forge(HS256, '"str"'), BAD_PAYLOAD],
    [
      'a header that is not JSON',
      forge('{"alg":"HS256"', { exp: exp() }),
      'Error: Malformed token: the header is not a JSON object',
    ],
    ['two parts', `${validHead}.${validBody}`, MALFORMED],
    ['four parts', `${valid()}.${validBody}`, MALFORMED],
    ['empty parts', '..', MALFORMED],
    ['an empty signature', `${validHead}.${validBody}.`, MALFORMED],
    ['a 4 KB signature', `${validHead}.${validBody}.${'A'.repeat(4096)}`, 'Error: Invalid signature'],
    ['control bytes', `${validHead}\u0000.${validBody}\u0007.\u001b[2J`, MALFORMED],
    ['alg none, unsigned', `${part({ alg: 'none' })}.${part({ exp: exp(), id: 'p' })}.`, MALFORMED],
    [
      'alg none, signed anyway',
      forge({ alg: 'none' }, { exp: exp(), id: 'p' }),
      'Error: Algorithm not allowed: "none" (expected HS256)',
    ],
    [
      'a wrong secret',
      jwt.sign({ id: 'p' }, 'not the secret', { expiresIn: 3600 }),
      'Error: Invalid signature',
    ],
    [
      'HS512 when HS256 is configured',
      jwt.sign({ id: 'p' }, SECRET, { algorithm: 'HS512', expiresIn: 3600 }),
      'Error: Algorithm not allowed: "HS512" (expected HS256)',
    ],
    [
      'expired',
      jwt.sign({ exp: 1_000_000, id: 'p' }, SECRET),
      `Error: Expired: ${new Date(1_000_000_000).toString()}`,
    ],
    [
      'no exp',
      jwt.sign({ id: 'p' }, SECRET, { noTimestamp: true }),
      'Error: No expiry: the token has no exp claim',
    ],
  ]
}

/** Authentic tokens of one role, shown to the entry points of another. */
export const roleTokens = {
  consumer: (userId = VICTIM_USER): string => jwt.sign({ userId }, SECRET, { expiresIn: 3600 }),
  producer: (): string => jwt.sign({ id: 'api-1' }, SECRET, { expiresIn: 3600 }),
  operator: (): string => jwt.sign({ name: 'snapper' }, SECRET, { expiresIn: 3600 }),
  operatorWithUserId: (): string =>
    jwt.sign({ name: 'snapper', userId: VICTIM_USER }, SECRET, { expiresIn: 3600 }),
}

export const REASONS = {
  consumerAsProducer: 'Error: Consumer token: a token with userId cannot act as a producer',
  notAnOperator: 'Error: Not an operator token: name "snapper" is required',
  operatorWithUserId: 'Error: Not an operator token: an operator token cannot carry userId',
  notAConsumer: 'Error: Not a consumer token: userId (24 lowercase hex digits) is required',
} as const
