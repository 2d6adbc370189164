import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { BIND_FAILED, freePort, PortTaken, startOnFreePorts, type PortChooser } from './ports.js'
import { eventually, within } from './eventually.js'
import { dieWithThisProcess } from './watchdog.js'

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** The running server's pid (a new one after restart()). */
  readonly pid: number
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
 * A port taken before the server could bind it is replaced by another one;
 * `choosePort` lets a test choose (and take away) the ports; `runner` runs
 * redis-server under another program in the same process (valgrind).
 */
export async function startRedis(
  extraArgs: string[] = [],
  { choosePort = freePort, runner = [] }: { choosePort?: PortChooser; runner?: readonly string[] } = {},
): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'snapper-redis-'))
  const clients: Redis[] = []
  let child: ChildProcess | undefined

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    await within(
      new Promise<void>(resolve => {
        proc.once('exit', () => resolve())
        proc.kill(signal)
      }),
      10_000,
      `redis-server ${proc.pid} to exit on ${signal}`,
    )
  }

  const launch = async (port: number): Promise<void> => {
    const logFile = join(dir, `redis-${port}.log`)
    const proc = spawn(
      runner[0] ?? 'redis-server',
      [
        ...(runner.length > 0 ? [...runner.slice(1), 'redis-server'] : []),
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
        '--logfile',
        logFile,
        ...extraArgs,
      ],
      // Not our stderr: ava waits for the end of a test process's stderr, which a server must not hold.
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    child = proc
    dieWithThisProcess(proc)
    let errors = '' // what it says before its log file is open (a bad argument)
    proc.stderr!.on('data', (chunk: Buffer) => (errors += chunk))
    const exited = new Promise<never>((_, reject) =>
      proc.once('close', code =>
        reject(
          BIND_FAILED.test(readLog(logFile))
            ? new PortTaken('redis-server', port)
            : new Error(`redis-server exited with ${code}: ${errors}${readLog(logFile).slice(-500)}`),
        ),
      ),
    )
    exited.catch(() => {}) // observed through the race while starting; later exits are the test's doing
    await Promise.race([waitForRedis(port, proc), exited])
  }
  const port = await startOnFreePorts(async () => {
    const port = await choosePort()
    await launch(port)
    return port
  }).catch(async (err: unknown) => {
    await kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    throw err
  })

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child!.pid!
    },
    client() {
      const client = new Redis(port, '127.0.0.1', { lazyConnect: false })
      client.on('error', () => {}) // assertions see failures through rejected commands
      clients.push(client)
      return client
    },
    kill,
    signal: signal => void child?.kill(signal),
    restart: () => launch(port),
    async stop() {
      for (const client of clients) client.disconnect()
      await kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The server's log so far ('' before it wrote one). */
function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return '' // it exited before opening its log: nothing to say about the port
  }
}

/**
 * Resolves once this redis-server answers on the port: not another server
 * that took the port while ours failed to bind it. Gives up once it exited.
 */
export async function waitForRedis(port: number, server: ChildProcess, password?: string): Promise<void> {
  let answer = 'nothing'
  const isOurs = async (): Promise<boolean> => {
    if (server.exitCode !== null || server.signalCode !== null) throw new Error('redis-server exited')
    const client = new Redis(port, '127.0.0.1', {
      password,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      commandTimeout: 1000, // a listener that is not Redis never answers
    })
    client.on('error', () => {}) // not listening yet: connect() rejects
    try {
      await client.connect()
      answer = 'another server'
      return (await client.info('server')).includes(`process_id:${server.pid}\r`)
    } catch {
      return false
    } finally {
      client.disconnect()
    }
  }
  await eventually(isOurs, { what: () => `redis-server on port ${port} (${answer} answers)`, everyMs: 25 })
}

/** A key prefix no other test uses, so tests can share one server concurrently. */
export const uniquePrefix = (): string => `T${randomUUID().slice(0, 8)}`
