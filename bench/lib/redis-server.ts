import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

export interface BenchRedis {
  readonly port: number
  readonly url: string
  readonly pid: number
  /** A plain client for the bench's own reads (INFO, FLUSHALL); not counted in any target's work. */
  readonly client: Redis
  /** Empties every key and resets INFO commandstats, between runs. */
  reset(): Promise<void>
  /** Calls per command since the last reset, from INFO commandstats. */
  commandCalls(): Promise<Map<string, number>>
  stop(): Promise<void>
}

/** A free TCP port on 127.0.0.1 now (for servers that need it before they start). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

/** Resolves once something accepts TCP connections on the port (redis-server takes a few ms to start). */
async function listening(port: number): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const isUp = await new Promise<boolean>(resolve => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })
    if (isUp) return
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** A throwaway redis-server on a free port: no persistence, its own directory, enough clients for 10,000 consumers' peers. */
export async function startBenchRedis(): Promise<BenchRedis> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'snapper-bench-redis-'))
  const child: ChildProcess = spawn(
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
      '--maxclients',
      '20000',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', code => reject(new Error(`redis-server exited with ${code}`))),
  )
  exited.catch(() => {}) // observed through the race below while starting; a later exit fails the run's commands
  await Promise.race([listening(port), exited])
  const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 })
  client.on('error', () => {}) // a failed command rejects; the bench reports that
  await client.ping()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    client,
    async reset() {
      await client.flushall()
      await client.config('RESETSTAT')
    },
    async commandCalls() {
      const info = await client.info('commandstats')
      const calls = new Map<string, number>()
      for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
        calls.set(match[1]!, Number(match[2]))
      return calls
    },
    async stop() {
      client.disconnect()
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>(resolve => {
          child.once('exit', () => resolve())
          child.kill('SIGKILL')
        })
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
