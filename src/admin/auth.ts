/**
 * Who may call what on the admin app: the roles of `auth/token.ts`. The /v1
 * API takes a producer token (any valid token without `userId`) or an
 * operator token; /stats and the dashboard take an operator token only. A
 * missing, malformed, forged or expired token is 401; an authentic token of
 * another role (a consumer's, say) is 400, as the original's /stats answered.
 */
import type { Context } from 'koa'
import { repeatedToken, type Claims, type Tokens } from '../auth/token.js'
import { TokenRefused } from './errors.js'

/** The token of `Authorization: Bearer <token>`, if any. */
export function bearerToken(ctx: Context): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'))
  return match?.[1]
}

/** The claims of a producer or operator token from the Authorization header; throws TokenRefused. */
export function verifyProducer(tokens: Tokens, ctx: Context): Claims {
  const token = bearerToken(ctx)
  if (token === undefined)
    throw new TokenRefused({
      reason: 'Authorization: Bearer <producer token> is required',
      isWrongRole: false,
    })
  const asProducer = tokens.verifyProducer(token)
  if (asProducer.ok) return asProducer.claims
  const asOperator = tokens.verifyOperator(token)
  if (asOperator.ok) return asOperator.claims
  throw new TokenRefused(asProducer)
}

/** The operator token (`name: 'snapper'`) from `?token=` or the Authorization header; throws TokenRefused. */
export function verifyOperator(tokens: Tokens, ctx: Context): void {
  const query = ctx.query.token
  // Koa gives a repeated parameter as an array: say so, rather than "no token".
  if (Array.isArray(query)) throw new TokenRefused(repeatedToken(query.length))
  const token = typeof query === 'string' && query !== '' ? query : bearerToken(ctx)
  if (token === undefined)
    throw new TokenRefused({
      reason: 'a token with name "snapper" is required (?token= or Authorization: Bearer)',
      isWrongRole: false,
    })
  const verified = tokens.verifyOperator(token)
  if (!verified.ok) throw new TokenRefused(verified)
}
