/**
 * Who may call what on the admin app. Every token is a JWS signed with the
 * broker's secrets (Tokens.verify); what it may do depends on its claims:
 *
 * | token                          | claims                  | may                          |
 * | ------------------------------ | ----------------------- | ---------------------------- |
 * | producer (snapper-producer's)  | `id`, no `userId`       | /v1/* (publish, subscribe...) |
 * | operator                       | `name: 'snapper'`       | /stats, and /v1/*             |
 * | consumer                       | `userId`                | nothing here                 |
 *
 * Consumer tokens are signed with the same secrets and handed to browsers, so
 * anything carrying `userId` is refused here, whatever else it carries.
 */
import type { Context } from 'koa'
import type { Tokens } from '../auth/token.js'
import { Unauthorized } from './errors.js'

/** The token of `Authorization: Bearer <token>`, if any. */
export function bearerToken(ctx: Context): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'))
  return match?.[1]
}

/** The claims of a producer or operator token from the Authorization header; throws Unauthorized. */
export function verifyProducer(tokens: Tokens, ctx: Context): Record<string, unknown> {
  const token = bearerToken(ctx)
  if (token === undefined) throw new Unauthorized('Authorization: Bearer <producer token> is required')
  const verified = tokens.verify(token)
  if (!verified.ok) throw new Unauthorized(verified.reason)
  const { claims } = verified
  if (claims.userId !== undefined) throw new Unauthorized('a consumer token cannot call the producer API')
  const isProducer = typeof claims.id === 'string' && claims.id !== ''
  if (!isProducer && claims.name !== 'snapper')
    throw new Unauthorized('a producer token (with "id") is required')
  return claims
}

/** The operator token (`name: 'snapper'`) from `?token=` or the Authorization header; throws Unauthorized. */
export function verifyOperator(tokens: Tokens, ctx: Context): void {
  const query = ctx.query.token
  const token = typeof query === 'string' && query !== '' ? query : bearerToken(ctx)
  if (token === undefined)
    throw new Unauthorized('a token with name "snapper" is required (?token= or Authorization: Bearer)')
  const verified = tokens.verify(token)
  if (!verified.ok) throw new Unauthorized(verified.reason)
  if (verified.claims.name !== 'snapper') throw new Unauthorized('a token with name "snapper" is required')
}
