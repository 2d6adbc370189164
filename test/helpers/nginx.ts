import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nginxUpstream } from '../../src/cli/nginx.js'
import { isListening } from '../../src/cli/local-redis.js'
import { freePort } from './ports.js'

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
export async function startNginx(gatewayPort: number, workers: number): Promise<RunningNginx> {
  if (!NGINX)
    throw new Error('nginx is not installed: apt-get install -y nginx-light (npm test does it as root)')
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'snapper-nginx-'))
  const shipped = readFileSync(new URL('../../../nginx.conf', import.meta.url), 'utf8')
  const conf = shipped
    .replace(/upstream snapper_gateways \{[^}]*\}/, nginxUpstream({ gatewayPort, workers }))
    .replace(/listen 80;/, `listen 127.0.0.1:${port};`)
    .replace(/worker_processes auto;/, 'worker_processes 1;')
    .replace(/worker_connections \d+;/, 'worker_connections 4096;')
  if (conf === shipped) throw new Error('nginx.conf did not change: its blocks moved')
  const file = join(dir, 'nginx.conf')
  writeFileSync(file, conf)
  const child = spawn(
    NGINX,
    [
      '-p',
      dir,
      '-c',
      file,
      '-g',
      `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')} warn;`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  const deadline = Date.now() + 10_000
  while (!(await isListening('127.0.0.1', port))) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`)
    if (Date.now() > deadline) throw new Error('nginx did not start within 10 s')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return {
    port,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise(resolve => child.once('exit', resolve))
        child.kill('SIGQUIT')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
