#!/usr/bin/env node
import cluster from 'node:cluster'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { tokensOf } from '../auth/token.js'
import { OPTIONS } from '../config/env.js'
import {
  ConfigError,
  loadConfig,
  unknownVariables,
  type Config,
  type UnknownVariable,
} from '../config/load.js'
import { createLogger, type Logger } from '../log.js'
import { PACKAGE } from '../package.js'
import { nginxConf } from './nginx.js'
import { start, type Broker, type StartOptions } from './start.js'
import { reportStartFailure, startWorker, WORKER_VARIABLES, type RunningWorker } from './worker.js'

const USAGE = `snapper ${PACKAGE.version}: push-messaging broker

Usage:
  snapper start [--config file.json] [--workers N] [--demo]
      Runs the broker in the foreground: N node processes (default: one per
      core; 0 runs one node in this process), the producer listener, the
      consumer gateways and the admin app. SIGTERM or Ctrl-C drains it.
      A token secret is required (SNAPPER_TOKEN_SECRETS).
      --demo also serves a demo page at http://localhost:<adminPort>/demo/
      (it signs consumer tokens for anyone: never in production); without a
      secret it makes a random one, and it listens on 127.0.0.1 unless
      SNAPPER_HOST is set.
  snapper token (--user <userId> [--source web|ios|android] | --name <name>) [--expires-in seconds] [--config file.json]
      Prints a token signed with the first configured secret: a consumer token
      for a user; with --name snapper the /stats and dashboard token (the first
      operator secret); with any other name a producer token (the admin /v1
      API's Bearer token, the name shown in logs). Valid 2 days by default.
  snapper nginx-conf [--workers N] [--hosts a,b,...] [--config file.json]
      Prints nginx.conf's body limit (maxPayloadBytes) and upstream block
      (ip_hash) for N gateway ports on each host (default 127.0.0.1; IPv6
      addresses in brackets).

Every option is also an environment variable (SNAPPER_*) and a key of the
JSON config file; see the README's configuration section.`

/** The signals whose default action would end this process without its `exit` hooks. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

async function main(argv: string[]): Promise<number> {
  if (cluster.isWorker) {
    await runWorker()
    return -1
  }
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      workers: { type: 'string' },
      demo: { type: 'boolean' },
      user: { type: 'string' },
      source: { type: 'string' },
      name: { type: 'string' },
      'expires-in': { type: 'string' },
      hosts: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  })
  const command = positionals[0]
  if (values.version) return print(PACKAGE.version)
  if (values.help || command === undefined || command === 'help') return print(USAGE)

  const workers = values.workers === undefined ? undefined : Number(values.workers)
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 0))
    throw new ConfigError(`--workers: expected a whole number, got ${values.workers}`)
  const overrides = { ...(workers !== undefined && { workers }), ...(values.demo && { demo: true }) }
  const config = loadConfig({ file: values.config, env: process.env, overrides })
  const unknown = unknownVariables(process.env, WORKER_VARIABLES)

  switch (command) {
    case 'start': {
      const log = createLogger(config.logLevel)
      for (const { name, closest } of unknown)
        log.warn({ variable: name, closest }, 'unknown SNAPPER_* environment variable: ignored')
      await runBroker(config, log, {
        isRedisConfigured: isConfigured('redis', values.config),
        isHostConfigured: isConfigured('host', values.config),
      })
      return -1 // keeps running; the signal handlers exit
    }
    case 'token':
      warnOnStderr(unknown)
      return print(signToken(config, values))
    case 'nginx-conf':
      warnOnStderr(unknown)
      return print(nginxConf(config, values.hosts?.split(',').map(trimmed)))
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}\n`)
      return 2
  }
}

/**
 * `snapper start` in this process. SIGTERM and SIGINT drain gracefully; a
 * second signal exits at once. SIGHUP is a rolling restart with workers; with
 * a single node it drains like SIGTERM.
 */
async function runBroker(config: Config, log: Logger, options: StartOptions): Promise<void> {
  // Until the drain handlers are in place, a signal ends start-up through process.exit: the
  // signal's default action would skip the `exit` hook that stops the Redis we may have started.
  const abort = (signal: NodeJS.Signals): void => {
    log.warn({ signal }, 'signal during start-up: exiting')
    process.exit(1)
  }
  for (const signal of STOP_SIGNALS) process.on(signal, abort)
  let broker: Broker
  try {
    broker = await start(config, log, options)
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, abort)
  }
  const { rollingRestart } = broker
  if (rollingRestart) process.on('SIGHUP', rollingRestart)
  // One process has nothing to restart in turn; SIGHUP's default action would exit without draining.
  exitAfterDrain(log, broker, { signals: rollingRestart ? ['SIGTERM', 'SIGINT'] : STOP_SIGNALS })
}

/**
 * A worker process of `snapper start --workers N`. If it cannot start, it
 * tells the primary why and exits 1.
 */
async function runWorker(): Promise<void> {
  let worker: RunningWorker
  try {
    worker = await startWorker(process.env)
  } catch (err) {
    if (!(await reportStartFailure(err))) throw err // not forked by a primary: nobody to tell
    process.exit(1)
  }
  // A stop signal often reaches a worker twice: Ctrl-C (SIGINT) and systemd's stop (SIGTERM) go
  // to the whole process group, and the primary passes them on as SIGTERM. So a worker drains
  // once and never takes a repeat as "exit now": the drain timeout bounds it. SIGHUP to the
  // group (a closed terminal) is the primary's rolling restart; its default action here would
  // kill the worker undrained.
  process.on('SIGHUP', () => {})
  const { node, config, log } = worker
  exitAfterDrain(
    log,
    { drain: () => node.stop(), drainTimeoutMs: config.drainTimeoutMs },
    { repeatExits: false },
  )
  worker.announceReady()
}

/**
 * Drains on any of `signals`, then exits 0; exits 1 if the drain fails or
 * takes longer than drainTimeoutMs, or on a second signal unless
 * `repeatExits` is false.
 *
 * Also the last resort: an exception or rejection that no handler caught (a
 * bug: every socket, request and timer handler catches its own) is logged as
 * fatal, and the process drains and exits 1 rather than serve on in an
 * unknown state or die without a word; a worker is then restarted.
 */
function exitAfterDrain(
  log: Logger,
  broker: Pick<Broker, 'drain' | 'drainTimeoutMs'>,
  {
    signals = ['SIGTERM', 'SIGINT'],
    repeatExits = true,
  }: { signals?: readonly NodeJS.Signals[]; repeatExits?: boolean },
): void {
  const timeoutMs = broker.drainTimeoutMs
  let isDraining = false
  let exitCode = 0
  const shutdown = (signal: NodeJS.Signals | 'fatal'): void => {
    if (isDraining) {
      if (!repeatExits) return log.info({ signal }, 'already draining')
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    isDraining = true
    log.info({ signal, timeoutMs }, 'draining')
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, 'drain timed out: exiting')
      process.exit(1)
    }, timeoutMs)
    timer.unref()
    broker.drain().then(
      () => process.exit(exitCode),
      (err: unknown) => {
        log.error({ err }, 'drain failed')
        process.exit(1)
      },
    )
  }
  for (const signal of signals) process.on(signal, shutdown)
  const fatal = (err: unknown, origin: string): void => {
    log.fatal({ err, origin }, 'uncaught exception: draining, then exiting 1')
    exitCode = 1
    if (!isDraining) shutdown('fatal')
  }
  process.on('uncaughtException', fatal)
  process.on('unhandledRejection', reason => fatal(reason, 'unhandledRejection'))
}

/** The platforms a consumer token's source names (consumerIdOf in src/auth/token.ts). */
const SOURCES: readonly string[] = ['web', 'ios', 'android']

function signToken(
  config: Config,
  values: { user?: string; source?: string; name?: string; 'expires-in'?: string },
): string {
  if (config.tokenSecrets.length === 0)
    throw new ConfigError(
      'no token secret configured: set SNAPPER_TOKEN_SECRETS (or "tokenSecrets" in the config file)',
    )
  const expiresIn = values['expires-in'] === undefined ? undefined : Number(values['expires-in'])
  if (expiresIn !== undefined && !(Number.isInteger(expiresIn) && expiresIn > 0))
    throw new ConfigError(`--expires-in: expected seconds, got ${values['expires-in']}`)
  const tokens = tokensOf(config)
  if (values.name === 'snapper') return tokens.signOperator(expiresIn)
  if (values.name !== undefined) return tokens.sign({ name: values.name }, expiresIn)
  if (values.user === undefined)
    throw new ConfigError('token: --user <24 lowercase hex digits> or --name <name> is required')
  if (!/^[a-f0-9]{24}$/.test(values.user))
    throw new ConfigError(
      `token: --user: expected 24 lowercase hex digits, got ${JSON.stringify(values.user)}`,
    )
  // The gateway takes any source and counts the consumer by its first letter (a, i, w; else web):
  // "mobile" would be web, "iPhone" ios. Only the three names say what they mean.
  if (values.source !== undefined && !SOURCES.includes(values.source))
    throw new ConfigError(
      `token: --source: expected web, ios or android, got ${JSON.stringify(values.source)}`,
    )
  return tokens.sign(
    values.source === undefined ? { userId: values.user } : { userId: values.user, source: values.source },
    expiresIn,
  )
}

/** Whether the operator set `key` (environment or config file): a Redis to use, a host to bind to. */
function isConfigured(key: 'redis' | 'host', configFile: string | undefined): boolean {
  if (process.env[OPTIONS[key].env]) return true
  if (configFile === undefined) return false
  return Object.hasOwn(loadConfigKeys(configFile), key)
}

/** The keys a config file sets (loadConfig has already validated it). */
function loadConfigKeys(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
}

const trimmed = (text: string): string => text.trim()

/** Outside `start`, stdout is the command's output (a token, a config), so warnings go to stderr. */
function warnOnStderr(unknown: readonly UnknownVariable[]): void {
  for (const { name, closest } of unknown) {
    const hint = closest === undefined ? '' : ` (did you mean ${closest}?)`
    process.stderr.write(`warning: unknown environment variable ${name} ignored${hint}\n`)
  }
}

function print(text: string): number {
  process.stdout.write(`${text}\n`)
  return 0
}

main(process.argv.slice(2)).then(
  code => {
    if (code >= 0) process.exitCode = code
  },
  (err: unknown) => {
    const message =
      err instanceof ConfigError
        ? `configuration error: ${err.message}`
        : `snapper: ${(err as Error).message}`
    process.stderr.write(`${message}\n`) // synchronous on Linux: written before the exit
    // Exit now rather than set exitCode: after a failed start something may still hold the event
    // loop (the Redis we started, a worker's IPC channel), and exit runs the hook that stops that Redis.
    process.exit(1)
  },
)
