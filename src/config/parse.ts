/**
 * How a raw option value is read: from the config file (any JSON) or the
 * environment (a string), into the type the option has; a value that does
 * not fit throws a ConfigError saying what was expected.
 */
import { isIP } from 'node:net'
import type { RedisTarget } from './defaults.js'
import { isSameAuth, parseRedisNode, redactRedisUrl } from './redis-url.js'

/** A value from the config file (any JSON) or the environment (a string). */
export type Parser<T> = (raw: unknown) => T

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const fail = (expected: string, raw: unknown): never => {
  throw new ConfigError(`expected ${expected}, got ${JSON.stringify(raw)}`)
}

export function integer(min: number, max: number): Parser<number> {
  return raw => {
    const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max)
      return fail(`an integer from ${min} to ${max}`, raw)
    return n
  }
}

export const toPort = integer(0, 65535)
export const toCount = integer(1, 2 ** 31 - 1)
export const toMs = integer(1, 2 ** 31 - 1)
/** Memory sizes may pass 2 GiB. */
export const toMemoryBytes = integer(1, Number.MAX_SAFE_INTEGER)

export const toText: Parser<string> = raw =>
  typeof raw === 'string' && raw.trim() !== '' ? raw.trim() : fail('a non-empty string', raw)

/**
 * The key prefix: no `{` or `}`, which would make Redis Cluster hash the
 * prefix instead of each key's own `{tag}` (all on one slot, or one script's
 * keys on several).
 */
export const toPrefix: Parser<string> = raw => {
  const text = toText(raw)
  return /[{}]/.test(text) ? fail('a prefix without { or }', raw) : text
}

/** A comma-separated string, or a JSON array of strings. */
export const toList: Parser<readonly string[]> = raw => {
  const items = typeof raw === 'string' ? raw.split(',') : raw
  if (!Array.isArray(items) || items.some(item => typeof item !== 'string'))
    return fail('a list of strings', raw)
  return items.map(item => (item as string).trim()).filter(item => item !== '')
}

/** `true`/`false` (JSON), or `1`/`0`, `true`/`false`, `yes`/`no` from the environment. */
export const toFlag: Parser<boolean> = raw => {
  if (typeof raw === 'boolean') return raw
  const text = typeof raw === 'string' ? raw.trim().toLowerCase() : undefined
  if (text === '1' || text === 'true' || text === 'yes') return true
  if (text === '0' || text === 'false' || text === 'no') return false
  return fail('true or false', raw)
}

/** IP addresses or CIDR ranges (`10.0.0.0/8`, `::1`), as a list like toList's. */
export const toAddressRanges: Parser<readonly string[]> = raw => {
  const items = toList(raw)
  for (const item of items) {
    const [address = '', prefix, ...rest] = item.split('/')
    const family = isIP(address)
    const maxPrefix = family === 6 ? 128 : 32
    const isPrefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix)
    if (family === 0 || !isPrefixOk || rest.length > 0) fail('IP addresses or CIDR ranges', raw)
  }
  return items
}

/** '' (off), or an http or https URL. */
export const toWebhookUrl: Parser<string> = raw => {
  if (raw === '') return ''
  const text = toText(raw)
  let url: URL | undefined
  try {
    url = new URL(text)
  } catch {
    url = undefined
  }
  return url && (url.protocol === 'http:' || url.protocol === 'https:') ? text : fail('an http(s) URL', raw)
}

/** Any string, '' included (a secret that may be unset). */
export const toSecret: Parser<string> = raw => (typeof raw === 'string' ? raw : fail('a string', raw))

export function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return raw => (values.includes(raw as T) ? (raw as T) : fail(`one of ${values.join(', ')}`, raw))
}

/**
 * `"redis://host:6379"` is one server. Several (a list, or comma-separated) or
 * `{"cluster": ["host:port", ...]}` are the seed nodes of a Redis Cluster.
 * A parsed RedisTarget (`{kind, url}` or `{kind, nodes}`) reads back as itself.
 */
export const toRedis: Parser<RedisTarget> = raw => {
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
    const { cluster, nodes, url } = raw as { cluster?: unknown; nodes?: unknown; url?: unknown }
    const seeds = cluster ?? nodes
    if (seeds !== undefined) return clusterTarget(nonEmpty(toList(seeds), raw))
    if (url !== undefined) return { kind: 'standalone', url: toText(url) }
    return fail('{"cluster": [...]} or {"url": "..."}', raw)
  }
  const nodes = nonEmpty(toList(raw), raw)
  return nodes.length === 1 ? { kind: 'standalone', url: nodes[0]! } : clusterTarget(nodes)
}

/**
 * Seed nodes that agree on user, password and scheme: ioredis gives one set
 * of options to every node of a cluster, those it learns from the slot map
 * included, so a seed that says otherwise would be ignored.
 */
function clusterTarget(nodes: readonly string[]): RedisTarget {
  const parsed = nodes.map(node => {
    try {
      return parseRedisNode(node)
    } catch {
      throw new ConfigError(`expected Redis addresses, got ${JSON.stringify(redactRedisUrl(node))}`)
    }
  })
  const differing = parsed.findIndex(node => !isSameAuth(node.auth, parsed[0]!.auth))
  if (differing >= 0)
    throw new ConfigError(
      'Redis Cluster nodes must share one user, password and scheme (redis:// or rediss://): ' +
        `${redactRedisUrl(nodes[differing]!)} differs from ${redactRedisUrl(nodes[0]!)}`,
    )
  return { kind: 'cluster', nodes }
}

function nonEmpty(list: readonly string[], raw: unknown): readonly string[] {
  return list.length > 0 ? list : fail('at least one Redis address', raw)
}
