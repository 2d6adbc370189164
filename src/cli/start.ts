import { randomBytes } from 'node:crypto'
import { tokensOf } from '../auth/token.js'
import type { Config } from '../config/defaults.js'
import { ConfigError } from '../config/env.js'
import type { Logger } from '../log.js'
import { openFilesLimit } from '../open-files.js'
import { isListening, spawnLocalRedis } from './local-redis.js'
import { describeBudget, filesBudgets, fitWithin } from './open-files-budget.js'
import { configPorts, startNode } from './node.js'
import { Primary } from './primary.js'

/** A started broker, as the process that runs it sees it. */
export interface Broker {
  /** Graceful drain; rejects if part of it did not finish cleanly. */
  drain(): Promise<void>
  /** How long the drain may take before the process gives up on it, in ms. */
  readonly drainTimeoutMs: number
  /** Restarts the workers one by one; undefined with a single node, which has nothing to restart in turn. */
  readonly rollingRestart: (() => void) | undefined
}

/** What the operator set explicitly (environment or config file), as opposed to a default. */
export interface StartOptions {
  /** A Redis to use; if not, `start` may run one of its own. */
  readonly isRedisConfigured: boolean
  /** A host to bind to; if not, demo mode binds 127.0.0.1. */
  readonly isHostConfigured: boolean
}

/**
 * `snapper start`: makes sure there is a Redis and a token secret, then runs
 * one node in this process (workers 0) or a primary with N worker nodes.
 * Resolves once it serves; a start that fails rejects. Signals and the exit
 * are the caller's (cli/snapper.ts).
 */
export async function start(config: Config, log: Logger, options: StartOptions): Promise<Broker> {
  config = secured(config, log, options.isHostConfigured)
  warnIfFilesRunOutFirst(config, log)
  if (!options.isRedisConfigured) await ensureLocalRedis(config, log)
  if (config.workers > 0) {
    const primary = await Primary.start(config, log)
    return {
      drain: () => primary.drain(),
      drainTimeoutMs: primary.drainTimeoutMs,
      rollingRestart: () => primary.rollingRestart(),
    }
  }
  const running = await startNode(config, log, configPorts(config), { ownsProcess: true })
  return { drain: () => running.stop(), drainTimeoutMs: config.drainTimeoutMs, rollingRestart: undefined }
}

/**
 * Each websocket session, producer and admin connection holds an open file.
 * A process that may need more files than its limit runs out of them before
 * its limits refuse anyone, and then its listeners stall: say at start which
 * setting to lower or how far to raise the limit (src/cli/open-files-budget.ts).
 */
function warnIfFilesRunOutFirst(config: Config, log: Logger): void {
  let limit: number
  try {
    limit = openFilesLimit()
  } catch {
    return // not Linux: no limit to read
  }
  if (!Number.isFinite(limit)) return
  for (const budget of filesBudgets(config, limit)) {
    if (budget.filesNeeded <= limit) continue
    const fit = fitWithin(budget, limit)
    const who = { node: 'the node', worker: 'each worker', primary: 'the primary' }[budget.process]
    const lower = fit.lower === undefined ? '' : `lower ${fit.lower} to ${fit.lowerTo} or `
    log.warn(
      { process: budget.process, filesNeeded: budget.filesNeeded, openFilesLimit: limit, ...fit },
      `open files: ${who} may need ${budget.filesNeeded} (${describeBudget(budget)}), ` +
        `more than its open-files limit of ${limit}: ${lower}raise the limit to ${fit.raiseLimitTo} ` +
        '(ulimit -n, systemd LimitNOFILE)',
    )
  }
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
    [
      'escalationWebhookSecret',
      config.escalationWebhookSecret === '' ? [] : [config.escalationWebhookSecret],
    ],
  ] as const) {
    const short = secrets.filter(secret => Buffer.byteLength(secret) < MIN_SECRET_BYTES).length
    if (short > 0)
      log.warn({ key, short, minBytes: MIN_SECRET_BYTES }, 'secret shorter than 32 bytes: easier to guess')
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
  await spawnLocalRedis(port, config.localRedisMaxMemoryBytes, log)
}
