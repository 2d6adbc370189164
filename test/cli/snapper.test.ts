import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { TEST_SECRET } from '../helpers/broker.js'
import { CLI, startCli, type RunningCli } from '../helpers/cli.js'
import { startRedis } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'

const connectTo = (host: string, port: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const socket = createConnection({ host, port }, () => {
      socket.destroy()
      resolve()
    })
    socket.once('error', reject)
  })

const SECRET = 'cli test secret'
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', SNAPPER_TOKEN_SECRETS: `${SECRET},older`, ...env },
  })

/** `snapper start` on a Redis of its own, with a token secret and no drain spread unless `env` says otherwise. */
async function startOnOwnRedis(
  t: ExecutionContext,
  options: { workers: number; args?: string[]; env?: Record<string, string>; openFilesLimit?: number },
): Promise<RunningCli> {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const env = {
    SNAPPER_REDIS: redis.url,
    SNAPPER_TOKEN_SECRETS: TEST_SECRET,
    SNAPPER_DRAIN_SPREAD_MS: '0',
    ...options.env,
  }
  return startCli(t, { ...options, env })
}

/**
 * The CLI's JSON log lines that contain `text`, parsed, once there is one:
 * when the CLI's ports answer, a line may still be on its way through the pipe.
 */
async function logLines(cli: RunningCli, text: string): Promise<Record<string, unknown>[]> {
  await eventually(() => cli.output().includes(text), { what: `a log line with ${text}` })
  return cli
    .output()
    .split('\n')
    .filter(line => line.includes(text))
    .map(line => JSON.parse(line) as Record<string, unknown>)
}

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

test('snapper token --name <other name> prints a producer token (the admin /v1 API), not an operator one', t => {
  const result = run(['token', '--name', 'api-1'])
  t.is(result.status, 0)
  const tokens = new Tokens([SECRET])
  t.true(tokens.verifyProducer(result.stdout.trim()).ok)
  t.false(tokens.verifyOperator(result.stdout.trim()).ok)
  t.regex(
    run(['--help']).stdout,
    /with any other name a producer token \(the admin \/v1\s+API's Bearer token/,
  )
})

test('snapper token refuses clearly without a secret or a valid user id', t => {
  const noSecret = run(['token', '--name', 'snapper'], { SNAPPER_TOKEN_SECRETS: '' })
  t.is(noSecret.status, 1)
  t.regex(noSecret.stderr, /no token secret configured: set SNAPPER_TOKEN_SECRETS/)
  const badUser = run(['token', '--user', 'bob'])
  t.is(badUser.status, 1)
  t.regex(badUser.stderr, /--user: expected 24 lowercase hex digits, got "bob"/)
  const noUser = run(['token', '--source', 'web'])
  t.is(noUser.status, 1)
  t.regex(noUser.stderr, /--user <24 lowercase hex digits> or --name <name> is required/)
})

test('snapper token --source takes web, ios or android only: another (mobile, iPhone) would count the consumer under a platform by its first letter', t => {
  for (const source of ['mobile', 'iPhone', 'Web', '']) {
    const result = run(['token', '--user', '55a07f2dee06c78e1357b0ad', '--source', source])
    t.is(result.status, 1, source)
    t.is(result.stdout, '', source)
    t.regex(
      result.stderr,
      new RegExp(
        `--source: expected web, ios or android, got ${JSON.stringify(JSON.stringify(source)).slice(1, -1)}`,
      ),
      source,
    )
  }
  for (const source of ['web', 'ios', 'android'])
    t.is(run(['token', '--user', '55a07f2dee06c78e1357b0ad', '--source', source]).status, 0, source)
})

test('snapper start without a token secret refuses to start and says what to set', t => {
  const result = run(['start', '--workers', '0'], { SNAPPER_TOKEN_SECRETS: '' })
  t.is(result.status, 1)
  t.regex(
    result.stderr,
    /^configuration error: no token secret configured: set SNAPPER_TOKEN_SECRETS \(or "tokenSecrets" in the config file\) to at least 32 random bytes/,
  )
})

test('--demo without a secret: a random one, printed; it listens on 127.0.0.1 only unless a host is configured', async t => {
  const demo = await startOnOwnRedis(t, {
    workers: 0,
    args: ['--demo'],
    env: { SNAPPER_TOKEN_SECRETS: '', SNAPPER_HOST: '' },
  })
  const secret = /SNAPPER_TOKEN_SECRETS=(\S+)/.exec(demo.output())?.[1]
  t.is(Buffer.from(secret ?? '', 'base64url').length, 32)
  const operator = /\/stats and admin API: +(\S+)/.exec(demo.output())?.[1]
  t.true(new Tokens([secret!]).verifyOperator(operator).ok)
  // All of 127/8 is loopback: a listener on 0.0.0.0 would answer 127.0.0.2 too.
  for (const port of Object.values(demo.ports))
    await t.throwsAsync(connectTo('127.0.0.2', port), { code: 'ECONNREFUSED' }, `port ${port}`)
  t.is((await fetch(`http://127.0.0.1:${demo.ports.admin}/demo/token`)).status, 200)
})

test('a token or webhook secret shorter than 32 bytes: a warning at start', async t => {
  const cli = await startOnOwnRedis(t, {
    workers: 0,
    env: {
      SNAPPER_TOKEN_SECRETS: 'short,a secret long enough: 32 bytes..',
      SNAPPER_ESCALATION_WEBHOOK_URL: 'http://127.0.0.1:9/hook',
      SNAPPER_ESCALATION_WEBHOOK_SECRET: 'tiny',
    },
  })
  const warnings = await logLines(cli, 'secret shorter than 32 bytes')
  t.like(warnings, [
    { level: 40, key: 'tokenSecrets', short: 1, minBytes: 32 },
    { level: 40, key: 'escalationWebhookSecret', short: 1, minBytes: 32 },
  ])
  t.is(warnings.length, 2)
  t.false(
    cli.output().includes('short,') || cli.output().includes('tiny'),
    'the secrets themselves are never logged',
  )
})

test("the primary's worker lines name the worker's pid as workerPid, not a second pid", async t => {
  const cli = await startOnOwnRedis(t, { workers: 1, env: { SNAPPER_LOG_LEVEL: 'info' } })
  // The CLI is up once its ports answer; the primary's line may still be on its way through the pipe.
  await eventually(() => cli.output().includes('"worker ready"'), { what: 'the "worker ready" line' })
  const ready = cli
    .output()
    .split('\n')
    .find(line => line.includes('"worker ready"'))
  t.is(ready?.match(/"pid":/g)?.length, 1, ready)
  const line = JSON.parse(ready ?? '{}') as { pid?: number; workerPid?: number }
  t.is(line.pid, cli.child.pid)
  t.not(line.workerPid, line.pid)
})

test('the start lines carry the version; SIGTERM ends with "broker stopped" and how long the drain took', async t => {
  const cli = await startOnOwnRedis(t, { workers: 1, env: { SNAPPER_LOG_LEVEL: 'info' } })
  const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  t.like(await logLines(cli, '"admin app started"'), [{ level: 30, version }])
  t.like(await logLines(cli, '"node started"'), [{ level: 30, version, worker: 0 }])
  t.like(await logLines(cli, '"broker started"'), [{ level: 30, version, workers: 1 }])
  cli.signal('SIGTERM')
  t.is(await cli.exited, 0)
  const [stopped] = await logLines(cli, '"broker stopped"')
  t.like(stopped, { level: 30, pid: cli.child.pid })
  t.is(typeof stopped?.drainMs, 'number')
})

test('a node that may need more files than its limit: a warning at start naming the setting to lower and the limit to raise; within it, none', async t => {
  // Full: 1500 sessions + 500 producer + 300 admin connections + the reserve (128) + 4 Redis connections + 32 of its own.
  const env = { SNAPPER_MAX_PRODUCER_CONNECTIONS: '500', SNAPPER_ADMIN_MAX_CONNECTIONS: '300' }
  const over = await startOnOwnRedis(t, {
    workers: 0,
    openFilesLimit: 2000,
    env: { ...env, SNAPPER_MAX_SESSIONS: '1500' },
  })
  const [warning, ...more] = await logLines(over, 'open files: ')
  t.like(warning, {
    level: 40,
    process: 'node',
    filesNeeded: 2464,
    openFilesLimit: 2000,
    lower: 'maxSessions',
    lowerTo: 1036,
    raiseLimitTo: 2464,
    msg:
      'open files: the node may need 2464 (maxSessions 1500 + maxProducerConnections 500 + adminMaxConnections 300 + ' +
      'openFilesReserve 128 + 4 Redis connections + 32 of its own), more than its open-files limit of 2000: ' +
      'lower maxSessions to 1036 or raise the limit to 2464 (ulimit -n, systemd LimitNOFILE)',
  })
  t.is(more.length, 0)
  const within = await startOnOwnRedis(t, {
    workers: 0,
    openFilesLimit: 2000,
    env: { ...env, SNAPPER_MAX_SESSIONS: '1036', SNAPPER_LOG_LEVEL: 'info' },
  })
  await logLines(within, '"node started"')
  t.false(within.output().includes('open files: '))
})

test("with workers the admin connections are the primary's: a primary that may need more files than its limit is named alone", async t => {
  // Each worker: 1300 + 500 + 128 + 4 + 32 = 1964 files, within 2000; the primary: 2000 admin connections + 4 + 1 + 32.
  const cli = await startOnOwnRedis(t, {
    workers: 1,
    openFilesLimit: 2000,
    env: {
      SNAPPER_MAX_SESSIONS: '1300',
      SNAPPER_MAX_PRODUCER_CONNECTIONS: '500',
      SNAPPER_ADMIN_MAX_CONNECTIONS: '2000',
      SNAPPER_LOG_LEVEL: 'info',
    },
  })
  await logLines(cli, '"broker started"')
  const warnings = await logLines(cli, 'open files: ')
  t.like(warnings, [
    { level: 40, process: 'primary', filesNeeded: 2037, lower: 'adminMaxConnections', lowerTo: 1963 },
  ])
  t.is(warnings.length, 1)
})

test('an unknown SNAPPER_* variable: a warning naming the closest option, at start and on stderr', async t => {
  const printed = run(['nginx-conf'], { SNAPPER_GATEWAY_PROT: '9001' })
  t.is(printed.status, 0)
  t.regex(
    printed.stderr,
    /^warning: unknown environment variable SNAPPER_GATEWAY_PROT ignored \(did you mean SNAPPER_GATEWAY_PORT\?\)/,
  )
  t.regex(printed.stdout, /server 127\.0\.0\.1:7701 /)
  const cli = await startOnOwnRedis(t, { workers: 0, env: { SNAPPER_TRUSTED_PROXY: '10.0.0.1' } })
  const [warning] = await logLines(cli, 'unknown SNAPPER_* environment variable')
  t.like(warning, {
    level: 40,
    variable: 'SNAPPER_TRUSTED_PROXY',
    closest: 'SNAPPER_TRUSTED_PROXIES',
  })
})

test('a bad environment value stops the CLI and names the variable', t => {
  const result = run(['start'], { SNAPPER_PRODUCER_PORT: 'seven' })
  t.is(result.status, 1)
  t.regex(result.stderr, /configuration error: environment: SNAPPER_PRODUCER_PORT \(producerPort\)/)
})

test('snapper nginx-conf prints the body limit and an ip_hash upstream over the worker ports', t => {
  const result = run(['nginx-conf', '--workers', '3'], {
    SNAPPER_GATEWAY_PORT: '9001',
    SNAPPER_MAX_PAYLOAD_BYTES: '500000',
  })
  t.is(result.status, 0)
  t.regex(
    result.stdout,
    /^client_max_body_size 500000;\n\nupstream snapper_gateways \{\n {4}ip_hash;\n {4}server 127\.0\.0\.1:9001 max_fails=0;\n {4}server 127\.0\.0\.1:9002 max_fails=0;\n {4}server 127\.0\.0\.1:9003 max_fails=0;/,
  )
  const hosts = run(['nginx-conf', '--workers', '2', '--hosts', '10.0.0.1, 10.0.0.2'])
  t.deepEqual(hosts.stdout.match(/server \S+/g), [
    'server 10.0.0.1:7701',
    'server 10.0.0.1:7702',
    'server 10.0.0.2:7701',
    'server 10.0.0.2:7702',
  ])
})

test('snapper nginx-conf brackets an IPv6 host and refuses a host nginx could not read', t => {
  const ipv6 = run(['nginx-conf', '--workers', '1', '--hosts', '::1,[fd00::2],push-1.internal'])
  t.is(ipv6.status, 0)
  t.deepEqual(ipv6.stdout.match(/server \S+/g), [
    'server [::1]:7701',
    'server [fd00::2]:7701',
    'server push-1.internal:7701',
  ])
  for (const hosts of ['10.0.0.1,', '10.0.0.1;evil', 'a b', '[10.0.0.1]', '10.0.0.1:7701']) {
    const refused = run(['nginx-conf', '--hosts', hosts])
    t.is(refused.status, 1, hosts)
    t.regex(refused.stderr, /configuration error: --hosts: /, hosts)
    t.is(refused.stdout, '', hosts)
  }
})

test('the shipped nginx.conf holds what snapper nginx-conf prints for 2 workers and the defaults', t => {
  const shipped = readFileSync(new URL('../../../nginx.conf', import.meta.url), 'utf8')
  const printed = run(['nginx-conf', '--workers', '2'], { SNAPPER_TOKEN_SECRETS: '' }).stdout.trimEnd()
  const indented = printed.replace(/^(?=.)/gm, '    ')
  t.true(shipped.includes(indented), `nginx.conf should hold:\n${indented}`)
})

test('snapper --help and an unknown command', t => {
  t.regex(run(['--help']).stdout, /snapper start \[--config file\.json\] \[--workers N\]/)
  const unknown = run(['launch'])
  t.is(unknown.status, 2)
  t.regex(unknown.stderr, /unknown command "launch"/)
})
