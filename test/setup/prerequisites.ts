/**
 * Run by `npm test` before ava: the suite needs real redis-server (and
 * redis-cli for Redis Cluster), nginx and Chromium. Installs Debian's packages
 * when it can (root, or passwordless sudo, with apt-get); otherwise names
 * exactly what is missing and how to install it, and fails.
 */
import { spawnSync } from 'node:child_process'

const NEEDED = [
  { command: 'redis-server', package: 'redis-server' },
  { command: 'redis-cli', package: 'redis-tools' },
  { command: 'nginx', package: 'nginx-light', path: '/usr/sbin/nginx' },
  { command: 'chromium', package: 'chromium', path: '/usr/bin/chromium' },
] as const

const has = (command: string, path?: string): boolean =>
  spawnSync('sh', ['-c', `command -v ${command} || test -x ${path ?? '/nonexistent'}`], { stdio: 'ignore' })
    .status === 0

const missing = NEEDED.filter(need => !has(need.command, 'path' in need ? need.path : undefined))
if (missing.length > 0) {
  const packages = [...new Set(missing.map(need => need.package))].join(' ')
  const isRoot = process.getuid?.() === 0
  const sudo = isRoot
    ? ''
    : spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0
      ? 'sudo '
      : undefined
  const canInstall = sudo !== undefined && has('apt-get')
  if (!canInstall) {
    process.stderr.write(
      `The test suite needs: ${missing.map(need => need.command).join(', ')}.\n` +
        `Install them with: sudo apt-get update && sudo apt-get install -y ${packages}\n`,
    )
    process.exit(1)
  }
  process.stderr.write(`Installing ${packages} (apt-get) for the test suite...\n`)
  const install = spawnSync(
    'sh',
    [
      '-c',
      `${sudo}apt-get update -qq && ${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${packages}`,
    ],
    { stdio: 'inherit' },
  )
  const still = NEEDED.filter(need => !has(need.command, 'path' in need ? need.path : undefined))
  if (install.status !== 0 || still.length > 0) {
    process.stderr.write(`Installing failed; still missing: ${still.map(need => need.command).join(', ')}\n`)
    process.exit(1)
  }
}
