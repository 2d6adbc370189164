import { readFileSync } from 'node:fs'
import { defaults, type Config } from './defaults.js'
import { ConfigError, OPTIONS } from './env.js'

export { ConfigError } from './env.js'
export type { Config, RedisTarget, LogLevel } from './defaults.js'

export interface LoadOptions {
  /** Path of a JSON config file. */
  readonly file?: string
  /** The environment to read SNAPPER_* variables from (the CLI passes process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Values that win over everything else (command-line flags, tests). */
  readonly overrides?: Partial<Config>
}

type Key = keyof Config
const KEYS = Object.keys(OPTIONS) as Key[]

/**
 * defaults < config file < environment < overrides, each value validated by
 * its option's parser. Throws a ConfigError naming the bad key. The result is
 * frozen: nothing changes the config after start-up.
 */
export function loadConfig({ file, env = {}, overrides = {} }: LoadOptions = {}): Config {
  const merged: Record<string, unknown> = { ...defaults }
  if (file !== undefined) Object.assign(merged, parseLayer(readFile(file), `config file ${file}`))

  const fromEnv: Record<string, unknown> = {}
  for (const key of KEYS) {
    const raw = env[OPTIONS[key].env]
    if (raw !== undefined && raw !== '') fromEnv[key] = raw
  }
  Object.assign(merged, parseLayer(fromEnv, 'environment'))
  Object.assign(merged, overrides)

  return checked(merged)
}

/**
 * A whole config from one JSON value, over the defaults, every key validated
 * as in a config file: how a worker reads the config its primary hands it.
 * Every parser accepts its own output, so a Config written as JSON reads back
 * as itself.
 */
export function parseConfig(value: unknown, source: string): Config {
  return checked({ ...defaults, ...parseLayer(asObject(value, source), source) })
}

function checked(merged: Record<string, unknown>): Config {
  const config = merged as unknown as Config
  checkTogether(config)
  return Object.freeze(config)
}

function readFile(file: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`)
  }
  return asObject(value, `config file ${file}`)
}

function asObject(value: unknown, source: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError(`${source} must hold a JSON object`)
  return value as Record<string, unknown>
}

function parseLayer(raw: Record<string, unknown>, source: string): Partial<Config> {
  const parsed: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(raw)) {
    const option = (OPTIONS as Record<string, (typeof OPTIONS)[Key] | undefined>)[key]
    if (!option) throw new ConfigError(`${source}: unknown option "${key}"`)
    try {
      parsed[key] = option.parse(value)
    } catch (err) {
      const where = source === 'environment' ? `${option.env} (${key})` : `"${key}"`
      throw new ConfigError(`${source}: ${where}: ${(err as Error).message}`)
    }
  }
  return parsed as Partial<Config>
}

/** A SNAPPER_* variable that names no option, and the option variable it was probably meant to be. */
export interface UnknownVariable {
  readonly name: string
  readonly closest?: string
}

/**
 * The SNAPPER_* variables of `env` that are neither an option's nor in
 * `alsoKnown` (variables the CLI sets itself), each with the closest option
 * variable when one is a typo away. Not refused, unlike an unknown key of a
 * config file: the file is Snapper's alone, the environment is shared (other
 * tools, deployment scripts), so the CLI warns.
 */
export function unknownVariables(
  env: Readonly<Record<string, string | undefined>>,
  alsoKnown: readonly string[] = [],
): UnknownVariable[] {
  const known = new Set([...KEYS.map(key => OPTIONS[key].env), ...alsoKnown])
  return Object.keys(env)
    .filter(name => name.startsWith('SNAPPER_') && !known.has(name))
    .map(name => {
      const closest = closestOf(name, known)
      return closest === undefined ? { name } : { name, closest }
    })
}

/** A typo is a few edits: at most 3, and fewer than a quarter of the name's letters. */
function closestOf(name: string, candidates: Iterable<string>): string | undefined {
  const maxEdits = Math.min(3, Math.floor(name.length / 4))
  let best: { name: string; edits: number } | undefined
  for (const candidate of candidates) {
    const edits = editDistance(name, candidate)
    if (edits <= maxEdits && (!best || edits < best.edits)) best = { name: candidate, edits }
  }
  return best?.name
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)
      row.push(Math.min(previous[j]! + 1, row[j - 1]! + 1, substitution))
    }
    previous = row
  }
  return previous[b.length]!
}

/** Rules that tie two options together. */
function checkTogether(config: Config): void {
  if (config.batchMaxMessages > config.consumerMaxQueue)
    throw new ConfigError('"batchMaxMessages" must not exceed "consumerMaxQueue"')
  if (config.batchMaxBytes * 2 > config.consumerMaxBackpressureBytes)
    throw new ConfigError('"batchMaxBytes" must be at most half of "consumerMaxBackpressureBytes"')
  // Below one consumer's bound, the node-wide one would cut readers that the per-consumer one spares.
  const total = config.consumerMaxBackpressureBytesTotal
  if (total !== 0 && total < config.consumerMaxBackpressureBytes)
    throw new ConfigError(
      '"consumerMaxBackpressureBytesTotal" must be 0 or at least "consumerMaxBackpressureBytes"',
    )
  if (config.maxAuthFrameBytes > config.maxFrameBytes)
    throw new ConfigError('"maxAuthFrameBytes" must not exceed "maxFrameBytes"')
  if (config.maxMessageBytes > config.roomLogMaxBytes)
    throw new ConfigError('"maxMessageBytes" must not exceed "roomLogMaxBytes"')
  if (config.maxMessageBytes > config.maxFrameBytes)
    throw new ConfigError('"maxMessageBytes" must not exceed "maxFrameBytes"')
  if (config.adminMaxBodyBytes > config.adminMaxPendingBodyBytes)
    throw new ConfigError('"adminMaxBodyBytes" must not exceed "adminMaxPendingBodyBytes"')
  if (config.escalationWebhookUrl !== '' && config.escalationWebhookSecret === '')
    throw new ConfigError('"escalationWebhookUrl" needs "escalationWebhookSecret", which signs the requests')
}
