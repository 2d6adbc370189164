import { pino, type Logger } from 'pino'
import type { LogLevel } from './config/defaults.js'

export type { Logger } from 'pino'

/**
 * One leveled JSON-lines logger per process. Levels follow who must act:
 * error means someone has to fix something; warn, something degraded and
 * healed; info, lifecycle facts. Facts go in fields, the message stays short
 * and fixed, and payloads are never logged at info or above.
 */
export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...bindings }, serializers: { err: serializeError } })
}

/**
 * pino's error serializer, minus the failed command's arguments that ioredis
 * attaches to its errors: they hold message bodies and tokens.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err
  const serialized = pino.stdSerializers.err(err) as unknown as Record<string, unknown>
  const command = serialized.command as { name?: unknown } | undefined
  if (command !== undefined) serialized.command = { name: command?.name }
  delete serialized.args
  return serialized
}

/** A logger that drops everything: for tests and tools that want silence. */
export const silentLogger: Logger = pino({ level: 'silent' })

/** Shortens a long value for a debug line. */
export function truncate(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`
}
