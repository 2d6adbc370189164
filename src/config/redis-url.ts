/**
 * Redis addresses as operators write them: `host:port`, `redis://host:port`,
 * `redis://user:password@host:port`, `rediss://...` (TLS): what one says
 * about the node and its credentials, and how it is shown without them.
 */

/** How a Redis node is reached beyond its address; every node of a cluster shares it. */
export interface RedisAuth {
  readonly username?: string
  readonly password?: string
  readonly isTls: boolean
}

export interface RedisNode {
  readonly host: string
  readonly port: number
  readonly auth: RedisAuth
}

/** Parses one node address; a bare `host:port` is `redis://host:port`. User and password are percent-decoded, as ioredis does. */
export function parseRedisNode(address: string): RedisNode {
  const url = new URL(address.includes('://') ? address : `redis://${address}`)
  const auth: RedisAuth = {
    isTls: url.protocol === 'rediss:',
    ...(url.username !== '' && { username: decodeURIComponent(url.username) }),
    ...(url.password !== '' && { password: decodeURIComponent(url.password) }),
  }
  // WHATWG URL keeps an IPv6 address in brackets; sockets want it bare.
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379), auth }
}

export const isSameAuth = (a: RedisAuth, b: RedisAuth): boolean =>
  a.username === b.username && a.password === b.password && a.isTls === b.isTls

/**
 * The address with its user and password replaced by `***` (those of the
 * authority, and a `password=` query option, which ioredis also reads), for
 * logs and error messages.
 */
export function redactRedisUrl(address: string): string {
  // Greedy up to the authority's last `@`, where URL parsers split it: an unencoded `@` in a password stays hidden.
  return address
    .replace(/^([a-z]+:\/\/)?[^/?#]*@/i, (_, scheme: string | undefined) => `${scheme ?? ''}***@`)
    .replace(/([?&]password=)[^&#]*/gi, '$1***')
}
