import { spawnSync } from 'node:child_process'
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { CLI } from '../helpers/cli.js'

const SECRET = 'cli test secret'
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', SNAPPER_TOKEN_SECRETS: `${SECRET},older`, ...env },
  })

test('snapper token --user prints a consumer token the broker accepts', t => {
  const result = run(['token', '--user', '55a07f2dee06c78e1357b0ad', '--source', 'ios'])
  t.is(result.status, 0)
  const verified = new Tokens([SECRET]).verifyConsumer(result.stdout.trim())
  t.true(verified.ok)
  if (verified.ok) {
    t.is(verified.claims.userId, '55a07f2dee06c78e1357b0ad')
    t.is(verified.claims.source, 'ios')
  }
})

test('snapper token --name snapper prints the /stats token, signed with the first secret', t => {
  const result = run(['token', '--name', 'snapper', '--expires-in', '60'])
  t.is(result.status, 0)
  const verified = new Tokens([SECRET]).verify(result.stdout.trim())
  t.true(verified.ok && verified.claims.name === 'snapper')
  t.false(new Tokens(['older']).verify(result.stdout.trim()).ok)
})

test('snapper token refuses clearly without a secret or a valid user id', t => {
  const noSecret = run(['token', '--name', 'snapper'], { SNAPPER_TOKEN_SECRETS: '' })
  t.is(noSecret.status, 1)
  t.regex(noSecret.stderr, /no token secret configured: set SNAPPER_TOKEN_SECRETS/)
  const badUser = run(['token', '--user', 'bob'])
  t.is(badUser.status, 1)
  t.regex(badUser.stderr, /--user <24 lowercase hex digits>/)
})

test('a bad environment value stops the CLI and names the variable', t => {
  const result = run(['start'], { SNAPPER_PRODUCER_PORT: 'seven' })
  t.is(result.status, 1)
  t.regex(result.stderr, /configuration error: environment: SNAPPER_PRODUCER_PORT \(producerPort\)/)
})

test('snapper nginx-conf prints an ip_hash upstream over the worker ports', t => {
  const result = run(['nginx-conf', '--workers', '3'], { SNAPPER_GATEWAY_PORT: '9001' })
  t.is(result.status, 0)
  t.regex(
    result.stdout,
    /upstream snapper_gateways \{\n {4}ip_hash;\n {4}server 127\.0\.0\.1:9001 max_fails=0;\n {4}server 127\.0\.0\.1:9002 max_fails=0;\n {4}server 127\.0\.0\.1:9003 max_fails=0;/,
  )
})

test('snapper --help and an unknown command', t => {
  t.regex(run(['--help']).stdout, /snapper start \[--config file\.json\] \[--workers N\]/)
  const unknown = run(['launch'])
  t.is(unknown.status, 2)
  t.regex(unknown.stderr, /unknown command "launch"/)
})
