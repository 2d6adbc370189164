import { createSecretKey, type KeyObject } from 'node:crypto'
import jwt from 'jsonwebtoken'
import type { TokenAlgorithm } from '../config/defaults.js'

/** What a consumer token must carry (extra claims are allowed and kept). */
export interface ConsumerClaims {
  readonly userId: string
  readonly exp: number
  readonly source?: string
  readonly [claim: string]: unknown
}

export type Verified<T> =
  { readonly ok: true; readonly claims: T } | { readonly ok: false; readonly reason: string }

const USER_ID = /^[a-f0-9]{24}$/

/**
 * Signs and verifies the broker's JWS tokens. The first secret signs; every
 * secret verifies, so a secret can be rotated in without refusing tokens
 * signed with the old one.
 */
export class Tokens {
  /**
   * The secrets as KeyObjects, made once: given a string, jsonwebtoken first
   * tries it as a PEM public key on every verify, and createPublicKey throws:
   * 380 µs per verify instead of 7 µs (bench/micro/token-verify.ts), most of
   * what a consumer handshake cost.
   */
  readonly #keys: readonly KeyObject[]
  readonly #algorithm: TokenAlgorithm

  constructor(secrets: readonly string[], algorithm: TokenAlgorithm = 'HS256') {
    if (secrets.length === 0) throw new Error('at least one token secret is required')
    this.#keys = secrets.map(secret => createSecretKey(Buffer.from(secret)))
    this.#algorithm = algorithm
  }

  /** A compact JWS of `payload` with `exp` = now + expiresInSec, like snapper-producer's signAuth. */
  sign(payload: Record<string, unknown>, expiresInSec = 2 * 24 * 3600): string {
    const exp = Math.floor(Date.now() / 1000) + expiresInSec
    return jwt.sign({ exp, ...payload }, this.#keys[0]!, { algorithm: this.#algorithm, noTimestamp: true })
  }

  /**
   * Verifies a token against every secret. A token without `exp` is refused,
   * as the original broker did. Reasons read like the original's
   * ("Error: Invalid signature", "Error: Expired: <date>"): producers see them
   * in the `data` of the 401 error.
   */
  verify(token: unknown): Verified<Record<string, unknown>> {
    if (typeof token !== 'string' || token === '') return { ok: false, reason: 'Error: Invalid signature' }
    const decoded = jwt.decode(token, { json: true })
    if (decoded === null) return { ok: false, reason: 'Error: Invalid signature' }
    const exp = typeof decoded.exp === 'number' ? decoded.exp : 0
    if (!(exp > 0) || exp * 1000 < Date.now())
      return { ok: false, reason: `Error: Expired: ${new Date(exp * 1000).toString()}` }
    for (const key of this.#keys) {
      try {
        const claims = jwt.verify(token, key, { algorithms: [this.#algorithm] })
        if (typeof claims === 'object' && claims !== null) return { ok: true, claims }
      } catch {
        // A signature made with another secret: try the next one.
      }
    }
    return { ok: false, reason: 'Error: Invalid signature' }
  }

  /** A consumer token: valid, with a 24-hex-digit `userId` and a numeric `exp`. */
  verifyConsumer(token: unknown): Verified<ConsumerClaims> {
    const verified = this.verify(token)
    if (!verified.ok) return verified
    const { claims } = verified
    if (typeof claims.userId !== 'string' || !USER_ID.test(claims.userId))
      return { ok: false, reason: 'userId is required' }
    return { ok: true, claims: claims as ConsumerClaims }
  }
}

const PLATFORMS = new Set(['a', 'i', 'w', 't'])

/**
 * The consumer id of a token, exactly as the original's `session2ID`: platform
 * letter, '.', then base64 of (userId ++ hex(exp)) with `/+=` made URL-safe as
 * `_-~`. The same token always gives the same id, so a reconnect resumes.
 */
export function consumerIdOf(claims: Pick<ConsumerClaims, 'userId' | 'exp' | 'source'>): string {
  const first = String(claims.source || 't')
    .toLowerCase()
    .charAt(0)
  const platform = PLATFORMS.has(first) ? first : 't'
  let expHex = Math.floor(claims.exp).toString(16)
  if (expHex.length % 2 === 1) expHex = `0${expHex}`
  const base64 = Buffer.from(claims.userId + expHex, 'hex').toString('base64')
  return `${platform}.${base64.replace(/\//g, '_').replace(/\+/g, '-').replace(/=/g, '~')}`
}

/** The platform a consumer id counts under in `consumers`. */
export function platformOf(consumerId: string): 'android' | 'ios' | 'web' {
  if (consumerId.startsWith('a.')) return 'android'
  if (consumerId.startsWith('i.')) return 'ios'
  return 'web'
}
