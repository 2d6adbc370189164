/**
 * The repository's nginx.conf under Debian's default open-files limit (soft
 * 1024): each consumer holds two connections in nginx, so without
 * `worker_rlimit_nofile` a worker stops at about 500 consumers, whatever
 * `worker_connections` says (nginx warns at start). Real nginx, daemonized
 * for a moment on a free port.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { BIND_FAILED, freePort, PortTaken, startOnFreePorts } from '../helpers/ports.js'

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(path => spawnSync(path, ['-v']).status === 0)

test('nginx.conf lifts the open-files limit above worker_connections', async t => {
  if (!NGINX) throw new Error('nginx is not installed: apt-get install -y nginx-light')
  const dir = mkdtempSync(join(tmpdir(), 'snapper-nginx-limits-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const shipped = readFileSync(new URL('../../../nginx.conf', import.meta.url), 'utf8')
  const conf = join(dir, 'nginx.conf')
  const pidFile = join(dir, 'nginx.pid')
  const errorLog = join(dir, 'error.log')
  // The master checks worker_connections against the limit while it starts, before it daemonizes.
  const started = await startOnFreePorts(async () => {
    const port = await freePort()
    writeFileSync(conf, shipped.replace(/listen 80;/, `listen 127.0.0.1:${port};`))
    const run = spawnSync(
      'sh',
      [
        '-c',
        'ulimit -Sn 1024 && exec "$0" "$@"',
        NGINX,
        '-p',
        dir,
        '-c',
        conf,
        '-g',
        `pid ${pidFile}; error_log ${errorLog} warn;`,
      ],
      { encoding: 'utf8' },
    )
    if (run.status !== 0 && BIND_FAILED.test(run.stderr)) throw new PortTaken('nginx', port)
    return run
  })
  t.is(started.status, 0, started.stderr)
  process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGQUIT')
  t.notRegex(started.stderr + readFileSync(errorLog, 'utf8'), /exceed open file resource limit/)
})
