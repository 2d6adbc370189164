import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nginxUpstream } from '../../src/cli/nginx.js'
import { BIND_FAILED, freePort, PortTaken, startOnFreePorts, type PortChooser } from './ports.js'
import { eventually } from './eventually.js'

/** Debian's nginx (npm test installs it: nginx-light). */
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(path => spawnSync(path, ['-v']).status === 0)

export interface RunningNginx {
  readonly port: number
  stop(): Promise<void>
}

/**
 * Runs the repository's nginx.conf for real, on a free port, with the
 * upstream that `snapper nginx-conf` prints for these gateways, in a
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
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit')
      child.kill('SIGQUIT')
      await exited
    }
  }
  const launch = async (): Promise<number> => {
    const port = await choosePort()
    const conf = shipped
      .replace(/upstream snapper_gateways \{[^}]*\}/, nginxUpstream({ gatewayPort, workers }))
      .replace(/listen 80;/, `listen 127.0.0.1:${port};`)
      .replace(/worker_processes auto;/, 'worker_processes 1;')
      .replace(/worker_connections \d+;/, 'worker_connections 4096;')
    if (conf === shipped) throw new Error('nginx.conf did not change: its blocks moved')
    writeFileSync(file, conf)
    const pidFile = join(dir, 'nginx.pid')
    const proc = spawn(
      NGINX,
      ['-p', dir, '-c', file, '-g', `daemon off; pid ${pidFile}; error_log ${join(dir, 'error.log')} warn;`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    child = proc
    // nginx retries a failed bind for 2.5 s: its first complaint is enough.
    let errors = ''
    proc.stderr.on('data', (chunk: Buffer) => (errors += chunk))
    // nginx writes its pid file once it holds its listening sockets (a listener there may be another's).
    const holdsItsPorts = async (): Promise<boolean> => {
      if (BIND_FAILED.test(errors)) {
        proc.kill('SIGKILL')
        await once(proc, 'exit')
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

const readText = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '')
