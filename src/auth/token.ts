/**
 * The broker's tokens: compact JWS with an HMAC (HS256/384/512), verified by
 * one function that never throws, whatever the input. Every entry point asks
 * for a role, and a token does only its role's job:
 *
 * | role     | verified with     | claims                                 | may                                   |
 * | -------- | ----------------- | -------------------------------------- | ------------------------------------- |
 * | producer | tokenSecrets      | no `userId` (`id` names it in logs)    | producer TCP, the admin /v1 API       |
 * | consumer | tokenSecrets      | `userId`: 24 lowercase hex digits      | one Engine.IO session as that user    |
 * | operator | operatorSecrets   | `name: 'snapper'`, no `userId`         | /stats, the dashboard, the /v1 API    |
 *
 * Consumer tokens are signed with the producers' secrets and live in browsers,
 * so anything carrying `userId` is a consumer token, whatever else it claims.
 * operatorSecrets default to tokenSecrets; separate ones keep a leaked
 * producer secret out of the admin app.
 *
 * Checks, in order: the shape (three base64url parts, a JSON object header
 * and payload), the algorithm (exactly the configured one: no `none`, no
 * other HMAC), the signature (against each secret, in constant time), then
 * the claims (`exp` present and not passed, `nbf` reached, the lifetime
 * bound), then the role. Reasons start with "Error: " as the original's did
 * ("Error: Invalid signature", "Error: Expired: <date>": snapper-producer
 * users see them in the 401's `data`).
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'
import type { Config, TokenAlgorithm } from '../config/defaults.js'
import type { ErrorCode } from '../errors.js'

/** What a consumer token must carry (extra claims are allowed and kept). */
export interface ConsumerClaims {
  readonly userId: string
  readonly exp: number
  readonly source?: string
  readonly [claim: string]: unknown
}

export type Claims = Readonly<Record<string, unknown>>

/**
 * A refusal. `isWrongRole`: the token is authentic and current, but not of
 * the role asked for (the original's /stats answered that with 400, not 401).
 */
export interface Refusal {
  readonly ok: false
  readonly reason: string
  readonly isWrongRole: boolean
}

export type Verified<T> = { readonly ok: true; readonly claims: T } | Refusal

export type TokenConfig = Pick<
  Config,
  'tokenSecrets' | 'tokenAlgorithm' | 'operatorSecrets' | 'tokenClockSkewSec' | 'tokenMaxLifetimeSec'
>

export interface TokenOptions {
  /** The JWS algorithm signed and accepted; any other is refused. @default 'HS256' */
  readonly algorithm?: TokenAlgorithm
  /** Secrets of operator tokens; the first signs. @default the token secrets */
  readonly operatorSecrets?: readonly string[]
  /** Leeway for `exp` and `nbf` against this host's clock, in seconds. @default 0 */
  readonly clockSkewSec?: number
  /** Refuse a token that expires more than this far ahead, in seconds; 0: no bound. @default 0 */
  readonly maxLifetimeSec?: number
}

const USER_ID = /^[a-f0-9]{24}$/
const BASE64URL = /^[A-Za-z0-9_-]+$/
const HASHES: Readonly<Record<TokenAlgorithm, string>> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }
/** Attacker-chosen text quoted in a reason is cut to this many characters. */
const MAX_QUOTED = 32

const refuse = (reason: string, isWrongRole = false): Refusal => ({ ok: false, reason, isWrongRole })

/** An operator request that gave `?token=` `times` times: which one it meant is not ours to guess. */
export const repeatedToken = (times: number): Refusal =>
  refuse(`Error: ?token= given ${times} times: give one token`)
const INVALID_SIGNATURE = refuse('Error: Invalid signature')
const NOT_COMPACT = refuse('Error: Malformed token: not a compact JWS (header.payload.signature)')

/** A token split and decoded, its signature not yet checked. */
interface Parsed {
  readonly signingInput: string
  /** The signature part as it was written (base64url text). */
  readonly signature: Buffer
  readonly claims: Claims
}

export class Tokens {
  /**
   * KeyObjects made once: createHmac takes them as they are, and building a
   * key per verify was most of what a consumer handshake cost.
   */
  readonly #keys: readonly KeyObject[]
  readonly #operatorKeys: readonly KeyObject[]
  readonly #algorithm: TokenAlgorithm
  readonly #hash: string
  readonly #clockSkewSec: number
  readonly #maxLifetimeSec: number

  constructor(secrets: readonly string[], options: TokenOptions = {}) {
    if (secrets.length === 0) throw new Error('at least one token secret is required')
    const operatorSecrets = options.operatorSecrets?.length ? options.operatorSecrets : secrets
    this.#keys = secrets.map(secret => createSecretKey(Buffer.from(secret)))
    this.#operatorKeys =
      operatorSecrets === secrets
        ? this.#keys
        : operatorSecrets.map(secret => createSecretKey(Buffer.from(secret)))
    this.#algorithm = options.algorithm ?? 'HS256'
    this.#hash = HASHES[this.#algorithm]
    this.#clockSkewSec = options.clockSkewSec ?? 0
    this.#maxLifetimeSec = options.maxLifetimeSec ?? 0
  }

  /** A compact JWS of `payload`, `exp` = now + expiresInSec, signed with the first token secret. */
  sign(payload: Record<string, unknown>, expiresInSec = 2 * 24 * 3600): string {
    return this.#sign(this.#keys[0]!, payload, expiresInSec)
  }

  /** An operator token (`name: 'snapper'`), signed with the first operator secret. */
  signOperator(expiresInSec = 2 * 24 * 3600): string {
    return this.#sign(this.#operatorKeys[0]!, { name: 'snapper' }, expiresInSec)
  }

  /** Authentic (a token secret) and current, whatever its role. */
  verify(token: unknown): Verified<Claims> {
    const parsed = this.#parse(token)
    if (!('claims' in parsed)) return parsed
    return this.#isSignedWith(parsed, this.#keys) ? this.#current(parsed.claims) : INVALID_SIGNATURE
  }

  /** A producer's auth: any valid token without `userId`. */
  verifyProducer(token: unknown): Verified<Claims> {
    const verified = this.verify(token)
    if (verified.ok && Object.hasOwn(verified.claims, 'userId'))
      return refuse('Error: Consumer token: a token with userId cannot act as a producer', true)
    return verified
  }

  /** A consumer's handshake: a valid token with a 24-hex-digit `userId`. */
  verifyConsumer(token: unknown): Verified<ConsumerClaims> {
    const verified = this.verify(token)
    if (!verified.ok) return verified
    const { userId } = verified.claims
    if (typeof userId !== 'string' || !USER_ID.test(userId))
      return refuse('Error: Not a consumer token: userId (24 lowercase hex digits) is required', true)
    return verified as Verified<ConsumerClaims>
  }

  /**
   * An operator: `name: 'snapper'`, no `userId`, signed with an operator
   * secret. A token that is valid for another role is refused as such
   * (isWrongRole), so that /stats can tell "who are you" from "not you".
   */
  verifyOperator(token: unknown): Verified<Claims> {
    const parsed = this.#parse(token)
    if (!('claims' in parsed)) return parsed
    let verified: Verified<Claims>
    if (this.#isSignedWith(parsed, this.#operatorKeys)) verified = this.#current(parsed.claims)
    else if (this.#operatorKeys !== this.#keys && this.#isSignedWith(parsed, this.#keys)) {
      verified = this.#current(parsed.claims)
      if (verified.ok) return refuse('Error: Not an operator token: signed with a producer secret', true)
    } else verified = INVALID_SIGNATURE
    if (!verified.ok) return verified
    const { claims } = verified
    if (claims.name !== 'snapper')
      return refuse('Error: Not an operator token: name "snapper" is required', true)
    if (Object.hasOwn(claims, 'userId'))
      return refuse('Error: Not an operator token: an operator token cannot carry userId', true)
    return verified
  }

  #sign(key: KeyObject, payload: Record<string, unknown>, expiresInSec: number): string {
    const exp = Math.floor(Date.now() / 1000) + expiresInSec
    const header = base64url({ alg: this.#algorithm, typ: 'JWT' })
    const signingInput = `${header}.${base64url({ exp, ...payload })}`
    return `${signingInput}.${createHmac(this.#hash, key).update(signingInput).digest('base64url')}`
  }

  /** The shape and the algorithm; nothing here trusts the token yet. */
  #parse(token: unknown): Parsed | Refusal {
    if (typeof token !== 'string' || token === '') return refuse('Error: Token required')
    const parts = token.split('.')
    if (parts.length !== 3 || !parts.every(part => BASE64URL.test(part))) return NOT_COMPACT
    const [header, payload, signature] = parts as [string, string, string]
    const head = decodeObject(header)
    if (head === undefined) return refuse('Error: Malformed token: the header is not a JSON object')
    if (head.alg !== this.#algorithm)
      return refuse(`Error: Algorithm not allowed: ${quote(head.alg)} (expected ${this.#algorithm})`)
    // Extensions we would have to understand to verify this token correctly (RFC 7515 §4.1.11).
    if (Object.hasOwn(head, 'crit')) return refuse('Error: Malformed token: unsupported "crit" header')
    const claims = decodeObject(payload)
    if (claims === undefined) return refuse('Error: Malformed token: the payload is not a JSON object')
    return { signingInput: `${header}.${payload}`, signature: Buffer.from(signature), claims }
  }

  #isSignedWith(parsed: Parsed, keys: readonly KeyObject[]): boolean {
    let matches = false
    for (const key of keys) {
      // Compared as text, not as the bytes it decodes to: the last character's unused bits
      // would otherwise let four spellings of one token pass.
      const expected = Buffer.from(
        createHmac(this.#hash, key).update(parsed.signingInput).digest('base64url'),
      )
      // Every key is tried, so the time taken does not say which one matched.
      if (expected.length === parsed.signature.length && timingSafeEqual(expected, parsed.signature))
        matches = true
    }
    return matches
  }

  /** `exp` present and not passed, `nbf` (if any) reached, and no further ahead than the lifetime bound. */
  #current(claims: Claims): Verified<Claims> {
    const { exp, nbf } = claims
    const nowSec = Date.now() / 1000
    const skew = this.#clockSkewSec
    if (exp === undefined) return refuse('Error: No expiry: the token has no exp claim')
    if (typeof exp !== 'number' || !Number.isFinite(exp))
      return refuse('Error: Malformed token: exp is not a number')
    if (nbf !== undefined && (typeof nbf !== 'number' || !Number.isFinite(nbf)))
      return refuse('Error: Malformed token: nbf is not a number')
    // The original's rule, exp in the past is expired (and exp 0 too), widened by the skew.
    if (!(exp > 0) || exp + skew < nowSec) return refuse(`Error: Expired: ${dateOf(exp)}`)
    if (nbf !== undefined && nbf - skew > nowSec) return refuse(`Error: Not yet valid: ${dateOf(nbf)}`)
    if (this.#maxLifetimeSec > 0 && exp - skew > nowSec + this.#maxLifetimeSec)
      return refuse(
        `Error: Lifetime too long: expires ${dateOf(exp)}, over ${this.#maxLifetimeSec} s from now`,
      )
    return { ok: true, claims }
  }
}

/** A refusal's code at an HTTP boundary: 400 for a token of another role, 401 for anything else. */
export function refusalCode(refusal: Pick<Refusal, 'isWrongRole'>): ErrorCode {
  return refusal.isWrongRole ? 'WRONG_ROLE' : 'UNAUTHORIZED'
}

/** The Tokens of a config. */
export function tokensOf(config: TokenConfig): Tokens {
  return new Tokens(config.tokenSecrets, {
    algorithm: config.tokenAlgorithm,
    operatorSecrets: config.operatorSecrets,
    clockSkewSec: config.tokenClockSkewSec,
    maxLifetimeSec: config.tokenMaxLifetimeSec,
  })
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** A base64url part as a JSON object (not null, not an array), or undefined. */
function decodeObject(part: string): Record<string, unknown> | undefined {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
  } catch {
    return undefined // not JSON: the caller says which part
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined
}

function dateOf(seconds: number): string {
  return new Date(seconds * 1000).toString()
}

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? 'none given'
  return text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}…` : text
}

const PLATFORMS = new Set(['a', 'i', 'w', 't'])

/**
 * The consumer id of a token, exactly as the original's `session2ID`: platform
 * letter, '.', then base64 of (userId ++ hex(exp)) with `/+=` made URL-safe as
 * `_-~`. The same token always gives the same id, so a reconnect resumes.
 */
export function consumerIdOf(claims: Pick<ConsumerClaims, 'userId' | 'exp' | 'source'>): string {
  // Only a string source counts: String() of an object from JSON can throw ({"toString": 1}).
  const source = typeof claims.source === 'string' && claims.source !== '' ? claims.source : 't'
  const first = source.toLowerCase().charAt(0)
  const platform = PLATFORMS.has(first) ? first : 't'
  let expHex = Math.floor(claims.exp).toString(16)
  if (expHex.length % 2 === 1) expHex = `0${expHex}`
  const base64 = Buffer.from(claims.userId + expHex, 'hex').toString('base64')
  return `${platform}.${base64.replace(/\//g, '_').replace(/\+/g, '-').replace(/=/g, '~')}`
}

/** The user id inside a consumer id (consumerIdOf, read back), or undefined if it holds none. */
export function userIdOf(consumerId: string): string | undefined {
  const base64 = consumerId.slice(2).replace(/_/g, '/').replace(/-/g, '+').replace(/~/g, '=')
  const bytes = Buffer.from(base64, 'base64')
  return bytes.length > 12 ? bytes.subarray(0, 12).toString('hex') : undefined
}

/** The platform a consumer id counts under in `consumers`. */
export function platformOf(consumerId: string): 'android' | 'ios' | 'web' {
  if (consumerId.startsWith('a.')) return 'android'
  if (consumerId.startsWith('i.')) return 'ios'
  return 'web'
}
