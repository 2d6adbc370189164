import { isIP } from 'node:net'
import type { Config } from '../config/defaults.js'
import { ConfigError } from '../config/parse.js'

/**
 * The part of nginx.conf that follows this broker's configuration, for its
 * `http` block: the body limit, equal to maxPayloadBytes (nginx answers a
 * larger polling POST with 413 itself, rather than pass it on to a broker
 * that would refuse it mid-body), and the upstream of the gateways, one
 * server per worker port on each host, `ip_hash` so that every polling
 * request of a session reaches the worker that holds it, and no `keepalive`:
 * a connection kept open to a worker draining in a rolling restart would still
 * carry requests to it after the new worker took its port (README,
 * Deployment). Paste it over the same lines of nginx.conf.
 */
export function nginxConf(
  config: Pick<Config, 'gatewayPort' | 'workers' | 'maxPayloadBytes'>,
  hosts: readonly string[] = ['127.0.0.1'],
): string {
  const count = Math.max(1, config.workers)
  const servers = hosts
    .map(upstreamHost)
    .flatMap(host =>
      Array.from({ length: count }, (_, i) => `    server ${host}:${config.gatewayPort + i} max_fails=0;`),
    )
  return [
    `client_max_body_size ${config.maxPayloadBytes};`,
    '',
    'upstream snapper_gateways {',
    '    ip_hash;',
    ...servers,
    '}',
  ].join('\n')
}

/**
 * A host as nginx's `server` directive takes it before `:port`: an IPv6
 * address in brackets (given bare or bracketed), an IPv4 address or a name.
 * Anything else (empty, a port, `;`, spaces) would print a config nginx
 * refuses, or one that says something else: refused here instead.
 */
function upstreamHost(host: string): string {
  const bare = /^\[(.*)\]$/.exec(host)?.[1] ?? host
  if (isIP(bare) === 6) return `[${bare}]`
  if (bare === host && /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) return host
  throw new ConfigError(`--hosts: expected IP addresses or host names, got ${JSON.stringify(host)}`)
}
