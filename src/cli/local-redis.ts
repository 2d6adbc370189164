import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import type { Logger } from '../log.js'

/** Where `snapper start` keeps the Redis it runs itself (data, so a restart keeps messages). */
const DATA_DIR = '.snapper/redis'

/** Whether something accepts TCP connections on host:port. */
export function isListening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise(resolve => {
    const socket = createConnection({ host, port })
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

const hasCommand = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0

/**
 * Makes sure `redis-server` is on this machine: installs Debian's package when
 * running as root with apt-get, otherwise says exactly what is missing.
 */
export function ensureRedisServer(log: Logger): void {
  if (hasCommand('redis-server')) return
  const isRoot = process.getuid?.() === 0
  if (!isRoot || !hasCommand('apt-get'))
    throw new Error(
      'redis-server is not installed and no Redis is configured. Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`) or set SNAPPER_REDIS to a running Redis.',
    )
  log.warn('redis-server is missing: installing Debian package redis-server (apt-get)')
  const install = spawnSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server'],
    {
      stdio: 'inherit',
    },
  )
  if (install.status !== 0 || !hasCommand('redis-server'))
    throw new Error('installing redis-server failed: run `apt-get install -y redis-server` and try again')
}

/**
 * Runs a redis-server of our own on 127.0.0.1:port with append-only
 * persistence in .snapper/redis, for `snapper start` without a configured
 * Redis. Resolves once it answers. Its memory is bounded (`maxmemory`) with
 * `noeviction`: when full it refuses writes, which producers get as
 * STORE_UNAVAILABLE, rather than evicting keys (room logs, cursors) silently.
 *
 * Lifetime: it outlives the drain and no more. It runs in a process group of
 * its own, so the SIGINT that Ctrl-C sends to our group does not stop it while
 * the drain still writes cursors and messages to it; it gets SIGTERM (Redis
 * then finishes its append-only file and exits) from our `exit` hook, which
 * runs on every way out but a fatal signal: process.exit (drain done, drain
 * timed out, start failed) and an uncaught exception. The fatal signals
 * are covered by cli/snapper.ts, which handles SIGINT, SIGTERM and SIGHUP
 * from the start; only SIGKILL leaves it running (the next `snapper start`
 * then finds it on the port and uses it).
 */
export async function spawnLocalRedis(
  port: number,
  maxMemoryBytes: number,
  log: Logger,
): Promise<ChildProcess> {
  ensureRedisServer(log)
  mkdirSync(DATA_DIR, { recursive: true })
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      join(process.cwd(), DATA_DIR),
      '--appendonly',
      'yes',
      '--save',
      '',
      '--maxmemory',
      String(maxMemoryBytes),
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], detached: true },
  )
  const stop = (): void => {
    child.kill('SIGTERM')
  }
  process.once('exit', stop)
  const deadline = Date.now() + 10_000
  while (!(await isListening('127.0.0.1', port))) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`)
    if (Date.now() > deadline) throw new Error('redis-server did not start within 10 s')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  log.info({ port, dir: DATA_DIR, maxMemoryBytes }, 'started a local redis-server (no Redis configured)')
  return child
}
