import type { Config } from '../config/defaults.js'

/**
 * The nginx upstream for this host's gateways: one server per worker port,
 * `ip_hash` so that every polling request of a session reaches the worker
 * that holds it. Paste it over the upstream block of nginx.conf.
 */
export function nginxUpstream(config: Pick<Config, 'gatewayPort' | 'workers'>, host = '127.0.0.1'): string {
  const count = Math.max(1, config.workers)
  const servers = Array.from(
    { length: count },
    (_, i) => `    server ${host}:${config.gatewayPort + i} max_fails=0;`,
  )
  return ['upstream snapper_gateways {', '    ip_hash;', ...servers, '    keepalive 64;', '}'].join('\n')
}
