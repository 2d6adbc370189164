/**
 * `snapper start` with no Redis configured (what `npm start` does) runs a
 * redis-server of its own on 127.0.0.1:6379. That port belongs to the
 * machine, so each test runs the CLI in a private network namespace
 * (`unshare -rn`), where 6379 is free and invisible from outside; the
 * consumer side runs in that namespace too (nsenter, local-redis-client.ts).
 * Ctrl-C drains with that Redis still up, and the Redis never outlives the
 * CLI: not after a drain, not after a failed start. Its memory is bounded
 * (maxmemory, noeviction).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { TEST_SECRET } from '../helpers/broker.js'
import { CLI } from '../helpers/cli.js'
import { eventually, pause, within } from '../helpers/eventually.js'

const CLIENT = fileURLToPath(new URL('local-redis-client.js', import.meta.url))
// Any ports: the namespace is empty. Not the defaults, so that a mistake cannot reach the host's.
const PORTS = { admin: 17699, producer: 17700, gateway: 17701 }
const canUnshare = spawnSync('unshare', ['-rn', 'true']).status === 0

interface NamespacedCli {
  readonly child: ChildProcess
  readonly exited: Promise<number | null>
  output(): string
  /** Pids of the redis-server processes whose data directory is this CLI's. */
  redisPids(): number[]
  /** Resolves once the CLI runs in its own namespaces (before that, nsenter cannot join them). */
  readonly inNamespace: Promise<void>
}

/** `snapper start` in a network namespace of its own, in a fresh working directory (its .snapper/redis). */
function startInNamespace(t: ExecutionContext, args: string[], env: Record<string, string>): NamespacedCli {
  const dir = mkdtempSync(join(tmpdir(), 'snapper-local-redis-'))
  // unshare and sh exec in place: the pid is the CLI's, and detached gives it a process group to Ctrl-C.
  const child = spawn(
    'unshare',
    ['-rn', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, CLI, 'start', ...args],
    {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? '',
        SNAPPER_TOKEN_SECRETS: TEST_SECRET,
        SNAPPER_HOST: '127.0.0.1',
        SNAPPER_ADMIN_PORT: String(PORTS.admin),
        SNAPPER_PRODUCER_PORT: String(PORTS.producer),
        SNAPPER_GATEWAY_PORT: String(PORTS.gateway),
        SNAPPER_LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    },
  )
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk))
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const redisPids = (): number[] =>
    readdirSync('/proc').flatMap(entry => {
      if (!/^\d+$/.test(entry)) return []
      try {
        // redis-server rewrites its command line, but it runs in its --dir (.snapper/redis).
        const isRedis = readFileSync(`/proc/${entry}/comm`, 'utf8') === 'redis-server\n'
        return isRedis && readlinkSync(`/proc/${entry}/cwd`).startsWith(dir) ? [Number(entry)] : []
      } catch {
        return [] // it exited while we looked (a zombie has no cwd either)
      }
    })
  t.teardown(() => {
    // Only if the test failed half-way: nothing may outlive it.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const pid of redisPids()) process.kill(pid, 'SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  return { child, exited, output: () => output, redisPids, inNamespace: namespaceReady(child) }
}

/**
 * Resolves once `unshare` has made the child's namespaces: nsenter before that
 * would join our own user namespace and fail (EINVAL), which a loaded machine shows.
 */
async function namespaceReady(child: ChildProcess): Promise<void> {
  const ours = readlinkSync('/proc/self/ns/net')
  await eventually(
    () => {
      try {
        return readlinkSync(`/proc/${child.pid}/ns/net`) !== ours
      } catch {
        return true // it exited already: what it printed tells why
      }
    },
    { what: 'the CLI in its own namespaces' },
  )
}

const testIf = canUnshare ? test : test.skip

for (const workers of [0, 2]) {
  testIf(`--workers ${workers}: Ctrl-C drains with the local Redis still up, then stops it`, async t => {
    const cli = startInNamespace(t, ['--workers', String(workers)], {
      SNAPPER_DRAIN_SPREAD_MS: '300',
      SNAPPER_DRAIN_TIMEOUT_MS: '3000',
      SNAPPER_LOCAL_REDIS_MAX_MEMORY_BYTES: String(64 << 20),
    })
    // The consumer and producer, inside the CLI's namespace.
    await cli.inNamespace
    const client = spawn(
      'nsenter',
      [
        '-t',
        String(cli.child.pid),
        '-U',
        '-n',
        '--preserve-credentials',
        process.execPath,
        CLIENT,
        String(PORTS.admin),
        String(PORTS.gateway),
        String(PORTS.producer),
        TEST_SECRET,
        '20',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    t.teardown(() => client.kill('SIGKILL'))
    let clientOutput = ''
    client.stdout.on('data', (chunk: Buffer) => (clientOutput += chunk))
    await eventually(() => clientOutput.includes('delivered') || client.exitCode !== null, {
      timeoutMs: 40_000,
    })
    t.is(clientOutput, 'delivered\n', cli.output())
    t.is(cli.redisPids().length, 1)
    // Its memory is bounded, and full means refusing writes, not evicting messages.
    const config = spawnSync(
      'nsenter',
      [
        ...['-t', String(cli.child.pid), '-U', '-n', '--preserve-credentials'],
        'redis-cli',
        'CONFIG',
        'GET',
        'maxmemory*',
      ],
      { encoding: 'utf8' },
    )
    t.regex(config.stdout, new RegExp(`^maxmemory\n${64 << 20}\n`, 'm'), config.stderr)
    t.regex(config.stdout, /^maxmemory-policy\nnoeviction\n/m)

    process.kill(-cli.child.pid!, 'SIGINT') // Ctrl-C: the whole process group
    t.is(
      await within(cli.exited, 30_000, () => `the CLI to exit after Ctrl-C: ${cli.output()}`),
      0,
      cli.output(),
    )
    t.notRegex(cli.output(), /drain timed out/)
    await eventually(() => cli.redisPids().length === 0, { timeoutMs: 5000 })
  })
}

testIf('a failed start stops the local Redis and exits 1', async t => {
  // The producer port is the one the local Redis takes: start fails after Redis is up.
  const cli = startInNamespace(t, ['--workers', '0'], { SNAPPER_PRODUCER_PORT: '6379' })
  const code = await Promise.race([cli.exited, pause(15_000).then(() => 'still running after 15 s')])
  t.is(code, 1, cli.output())
  t.regex(cli.output(), /snapper: .*EADDRINUSE/)
  await eventually(() => cli.redisPids().length === 0, { timeoutMs: 5000 })
})
