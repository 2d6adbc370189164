import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nginxConf } from '../../src/cli/nginx.js'
import { defaults } from '../../src/config/defaults.js'
import { BIND_FAILED, freePort, PortTaken, startOnFreePorts, type PortChooser } from './ports.js'
import { eventually, within } from './eventually.js'
import { dieWithThisProcess } from './watchdog.js'

/** Debian's nginx (npm test installs it: nginx-light). */
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(path => spawnSync(path, ['-v']).status === 0)

export interface RunningNginx {
  readonly port: number
  stop(): Promise<void>
}

/**
 * Runs the repository's nginx.conf for real, on a free port, with the
 * body limit and upstream that `snapper nginx-conf` prints for these
 * gateways (and the default maxPayloadBytes), in a
 * directory of its own (pid, logs, temp files).
 */
export async function startNginx(
  gatewayPort: number,
  workers: number,
  { choosePort = freePort }: { choosePort?: PortChooser } = {},
): Promise<RunningNginx> {
  if (!NGINX)
    throw new Error('nginx is not installed: apt-get install -y nginx-light (npm test does it as root)')
  const dir = mkdtempSync(join(tmpdir(), 'snapper-nginx-'))
  const shipped = readFileSync(new URL('../../../nginx.conf', import.meta.url), 'utf8')
  const file = join(dir, 'nginx.conf')
  let child: ChildProcess | undefined
  const stop = async (): Promise<void> => {
    const proc = child
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = once(proc, 'exit')
    proc.kill('SIGTERM') // fast shutdown: SIGQUIT would wait for open websockets to end
    await within(exited, 5000, 'nginx to stop').catch(() => killGroup(proc))
  }
  const launch = async (): Promise<number> => {
    const port = await choosePort()
    const conf = shipped
      .replace(
        /client_max_body_size \d+;\s*upstream snapper_gateways \{[^}]*\}/,
        nginxConf({ gatewayPort, workers, maxPayloadBytes: defaults.maxPayloadBytes }),
      )
      .replace(/listen 80;/, `listen 127.0.0.1:${port};`)
      .replace(/worker_processes auto;/, 'worker_processes 1;')
      .replace(/worker_connections \d+;/, 'worker_connections 4096;')
    if (conf === shipped) throw new Error('nginx.conf did not change: its blocks moved')
    writeFileSync(file, conf)
    const pidFile = join(dir, 'nginx.pid')
    const proc = spawn(
      NGINX,
      ['-p', dir, '-c', file, '-g', `daemon off; pid ${pidFile}; error_log ${join(dir, 'error.log')} warn;`],
      // A process group of its own, which the watchdog and killGroup kill with its workers.
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    )
    child = proc
    dieWithThisProcess(proc)
    // nginx retries a failed bind for 2.5 s: its first complaint is enough.
    let errors = ''
    proc.stderr.on('data', (chunk: Buffer) => (errors += chunk))
    // nginx writes its pid file once it holds its listening sockets (a listener there may be another's).
    const holdsItsPorts = async (): Promise<boolean> => {
      if (BIND_FAILED.test(errors)) {
        await killGroup(proc)
        throw new PortTaken('nginx', port)
      }
      if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${errors}`)
      return readText(pidFile).trim() === String(proc.pid)
    }
    await eventually(holdsItsPorts, { what: () => `nginx to start: ${errors}`, everyMs: 50 })
    return port
  }
  const port = await startOnFreePorts(launch).catch(async (err: unknown) => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
    throw err
  })
  return {
    port,
    async stop() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** SIGKILLs nginx and its workers (its process group); resolves once the master has exited. */
async function killGroup(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = once(proc, 'exit')
  try {
    process.kill(-proc.pid!, 'SIGKILL')
  } catch {
    return // ESRCH: the whole group has exited meanwhile
  }
  await within(exited, 5000, 'nginx to exit on SIGKILL')
}

const readText = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '')
