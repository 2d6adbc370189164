import { randomBytes } from 'node:crypto'
import { tokensOf } from '../auth/token.js'
import type { Config } from '../config/defaults.js'
import { ConfigError } from '../config/env.js'
import type { Logger } from '../log.js'
import { isListening, spawnLocalRedis } from './local-redis.js'
import { configPorts, startNode } from './node.js'
import { runWorkers } from './workers.js'

/** The signals whose default action would end this process without its `exit` hooks. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * `snapper start`: makes sure there is a Redis and a token secret, then runs
 * one node in this process (workers 0) or a primary with N worker nodes.
 * SIGTERM and SIGINT drain gracefully; a second signal exits at once. SIGHUP
 * is a rolling restart with workers; with a single node it drains like SIGTERM.
 * A start that fails rejects; the caller must then exit (process.exit).
 */
export async function start(
  config: Config,
  log: Logger,
  options: { isRedisConfigured: boolean; isHostConfigured: boolean },
): Promise<void> {
  config = secured(config, log, options.isHostConfigured)
  // Until the drain handlers are in place, a signal ends start-up through process.exit: the
  // signal's default action would skip the `exit` hook that stops the Redis we may have started.
  const abort = (signal: NodeJS.Signals): void => {
    log.warn({ signal }, 'signal during start-up: exiting')
    process.exit(1)
  }
  for (const signal of STOP_SIGNALS) process.on(signal, abort)
  try {
    if (!options.isRedisConfigured) await ensureLocalRedis(config, log)
    if (config.workers > 0) return await runWorkers(config, log)

    const running = await startNode(config, log, configPorts(config), { processMetrics: true })
    // One process has nothing to restart in turn; SIGHUP's default action would exit without draining.
    onShutdown(log, config.drainTimeoutMs, () => running.stop(), { signals: STOP_SIGNALS })
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, abort)
  }
}

/**
 * Calls `drain` on any of `signals`, then exits 0; exits 1 if it takes longer
 * than timeoutMs, or on a second signal unless `repeatExits` is false.
 */
export function onShutdown(
  log: Logger,
  timeoutMs: number,
  drain: () => Promise<void>,
  {
    signals = ['SIGTERM', 'SIGINT'],
    repeatExits = true,
  }: { signals?: readonly NodeJS.Signals[]; repeatExits?: boolean } = {},
): void {
  let draining = false
  const shutdown = (signal: NodeJS.Signals): void => {
    if (draining) {
      if (!repeatExits) return log.info({ signal }, 'already draining')
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    draining = true
    log.info({ signal, timeoutMs }, 'draining')
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, 'drain timed out: exiting')
      process.exit(1)
    }, timeoutMs)
    timer.unref()
    drain().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'drain failed')
        process.exit(1)
      },
    )
  }
  for (const signal of signals) process.on(signal, shutdown)
}

/** Secrets shorter than this get a warning: an HMAC key should hold as many bytes as its hash (RFC 7518 §3.2). */
const MIN_SECRET_BYTES = 32

/**
 * Safe defaults: no start without a token secret, except in demo mode, which
 * makes a random one and, unless a host is configured, listens on 127.0.0.1
 * only (its /demo/token signs consumer tokens for anyone who asks).
 */
function secured(config: Config, log: Logger, isHostConfigured: boolean): Config {
  for (const [key, secrets] of [
    ['tokenSecrets', config.tokenSecrets],
    ['operatorSecrets', config.operatorSecrets],
  ] as const) {
    const short = secrets.filter(secret => Buffer.byteLength(secret) < MIN_SECRET_BYTES).length
    if (short > 0)
      log.warn(
        { key, short, minBytes: MIN_SECRET_BYTES },
        'token secret shorter than 32 bytes: easier to guess',
      )
  }
  if (!config.demo) {
    if (config.tokenSecrets.length === 0)
      throw new ConfigError(
        'no token secret configured: set SNAPPER_TOKEN_SECRETS (or "tokenSecrets" in the config file) ' +
          'to at least 32 random bytes, e.g. `openssl rand -base64 32`; `snapper start --demo` tries Snapper with a random one',
      )
    return config
  }
  if (!isHostConfigured) config = Object.freeze({ ...config, host: '127.0.0.1' })
  return config.tokenSecrets.length > 0 ? config : withRandomSecret(config, log)
}

/** Demo mode without a configured secret: a random one, printed with a warning, with tokens to try the broker. */
function withRandomSecret(config: Config, log: Logger): Config {
  const secret = randomBytes(32).toString('base64url')
  const tokens = tokensOf({ ...config, tokenSecrets: [secret] })
  const userId = '55a07f2dee06c78e1357b0ad'
  log.warn(
    'no token secret configured (SNAPPER_TOKEN_SECRETS): demo mode uses a random one for this run only',
  )
  process.stderr.write(
    [
      '',
      '  WARNING: no token secret configured. This demo run uses a random secret:',
      `    SNAPPER_TOKEN_SECRETS=${secret}`,
      '  Producers sign their auth with it (snapper-producer: secretKeys). Sample tokens:',
      `    consumer (userId ${userId}): ${tokens.sign({ userId })}`,
      `    /stats and admin API:                   ${tokens.signOperator()}`,
      `  Listening on ${config.host} only${config.host === '127.0.0.1' ? ' (set SNAPPER_HOST to open it up)' : ''}.`,
      '',
      '',
    ].join('\n'),
  )
  return Object.freeze({ ...config, tokenSecrets: [secret] })
}

/** No Redis configured: use the one on 127.0.0.1:6379, or run one there. */
async function ensureLocalRedis(config: Config, log: Logger): Promise<void> {
  if (config.redis.kind !== 'standalone') return
  const url = new URL(config.redis.url)
  const host = url.hostname
  const port = Number(url.port || 6379)
  if (await isListening(host, port)) return
  if (host !== '127.0.0.1' && host !== 'localhost') return // not ours to start: startNode reports it
  await spawnLocalRedis(port, log)
}
