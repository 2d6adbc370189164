import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort } from './ports.js'

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** A plain client for assertions; closed by stop(). */
  client(): Redis
  /** SIGKILL (crash) or SIGTERM; the port stays reserved for restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Sends a signal without waiting for an exit (SIGSTOP freezes it, SIGCONT thaws it). */
  signal(signal: NodeJS.Signals): void
  /** Starts the server again on the same port (after kill). */
  restart(): Promise<void>
  stop(): Promise<void>
}

/**
 * Starts a throwaway redis-server on a free port (never 6379): no
 * persistence, its own directory. Call stop() in `test.after.always`.
 */
export async function startRedis(extraArgs: string[] = []): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'snapper-redis-'))
  const clients: Redis[] = []
  let child: ChildProcess | undefined

  const launch = async (): Promise<void> => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...extraArgs,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    )
    const exited = new Promise<never>((_, reject) =>
      child!.once('exit', code => reject(new Error(`redis-server exited with ${code}`))),
    )
    exited.catch(() => {})
    await Promise.race([waitForPing(port), exited])
  }
  await launch()

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    await new Promise<void>(resolve => {
      proc.once('exit', () => resolve())
      proc.kill(signal)
    })
  }

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client() {
      const client = new Redis(port, '127.0.0.1', { lazyConnect: false })
      client.on('error', () => {}) // assertions see failures through rejected commands
      clients.push(client)
      return client
    },
    kill,
    signal: signal => void child?.kill(signal),
    restart: launch,
    async stop() {
      for (const client of clients) client.disconnect()
      await kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

async function waitForPing(port: number): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const client = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.ping()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise(resolve => setTimeout(resolve, 25))
    } finally {
      client.disconnect()
    }
  }
}

/** A key prefix no other test uses, so tests can share one server concurrently. */
export const uniquePrefix = (): string => `T${randomUUID().slice(0, 8)}`
