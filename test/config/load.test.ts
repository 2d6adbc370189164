import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { defaults } from '../../src/config/defaults.js'
import { OPTIONS } from '../../src/config/env.js'
import { ConfigError, loadConfig, unknownVariables } from '../../src/config/load.js'

const fileWith = (value: unknown): string => {
  const file = join(mkdtempSync(join(tmpdir(), 'snapper-config-')), 'config.json')
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value))
  return file
}

test('defaults < file < environment < overrides, frozen', t => {
  const file = fileWith({ producerPort: 8800, gatewayPort: 8801, redisPrefix: 'FILE' })
  const config = loadConfig({
    file,
    env: { SNAPPER_GATEWAY_PORT: '9901', SNAPPER_LOG_LEVEL: 'debug', UNRELATED: 'x' },
    overrides: { logLevel: 'warn' },
  })
  t.is(config.producerPort, 8800)
  t.is(config.gatewayPort, 9901)
  t.is(config.redisPrefix, 'FILE')
  t.is(config.logLevel, 'warn')
  t.is(config.adminPort, defaults.adminPort)
  t.true(Object.isFrozen(config))
})

test('the DEVELOPERS.md defaults', t => {
  const config = loadConfig()
  t.is(config.producerPort, 7700)
  t.is(config.gatewayPort, 7701)
  t.deepEqual(config.redis, { kind: 'standalone', url: 'redis://127.0.0.1:6379' })
  t.deepEqual(config.tokenSecrets, [])
  t.is(config.redisPrefix, 'SNP')
  t.is(config.logLevel, 'info')
  t.true(config.workers >= 1)
})

test('redis: one URL, several (a cluster), or {"cluster": [...]}', t => {
  t.deepEqual(loadConfig({ env: { SNAPPER_REDIS: 'redis://h:1' } }).redis, {
    kind: 'standalone',
    url: 'redis://h:1',
  })
  t.deepEqual(loadConfig({ env: { SNAPPER_REDIS: 'h:1, h:2,h:3' } }).redis, {
    kind: 'cluster',
    nodes: ['h:1', 'h:2', 'h:3'],
  })
  t.deepEqual(loadConfig({ file: fileWith({ redis: { cluster: ['a:7000'] } }) }).redis, {
    kind: 'cluster',
    nodes: ['a:7000'],
  })
  t.deepEqual(loadConfig({ file: fileWith({ redis: ['a:1', 'b:2'] }) }).redis, {
    kind: 'cluster',
    nodes: ['a:1', 'b:2'],
  })
})

test('redis cluster seeds must agree on user, password and scheme; the refusal shows neither', t => {
  const seeds = ['redis://app:pw@a:1', 'redis://app:pw@b:2']
  t.deepEqual(loadConfig({ file: fileWith({ redis: { cluster: seeds } }) }).redis, {
    kind: 'cluster',
    nodes: seeds,
  })
  for (const other of ['redis://app:other@b:2', 'redis://b:2', 'rediss://app:pw@b:2', 'redis://ops:pw@b:2']) {
    const err = t.throws(() => loadConfig({ env: { SNAPPER_REDIS: `redis://app:pw@a:1,${other}` } }), {
      instanceOf: ConfigError,
      message: /SNAPPER_REDIS \(redis\): Redis Cluster nodes must share one user, password and scheme/,
    })
    t.false(/pw|other/.test(err!.message), err!.message)
  }
})

test('trusted proxies: addresses and CIDR ranges, IPv4 and IPv6', t => {
  const config = loadConfig({ env: { SNAPPER_TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8,::1,fd00::/8' } })
  t.deepEqual(config.trustedProxies, ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8'])
})

test('token secrets are a list: the first signs, all verify', t => {
  t.deepEqual(loadConfig({ env: { SNAPPER_TOKEN_SECRETS: 'new,old' } }).tokenSecrets, ['new', 'old'])
  t.deepEqual(loadConfig({ file: fileWith({ tokenSecrets: ['a', 'b'] }) }).tokenSecrets, ['a', 'b'])
})

test('a bad value or an unknown key stops start-up and names itself', t => {
  const cases: [Parameters<typeof loadConfig>[0], RegExp][] = [
    [
      { env: { SNAPPER_PRODUCER_PORT: '70000' } },
      /SNAPPER_PRODUCER_PORT \(producerPort\).*0 to 65535.*"70000"/,
    ],
    [{ env: { SNAPPER_LOG_LEVEL: 'loud' } }, /SNAPPER_LOG_LEVEL \(logLevel\): expected one of fatal, error/],
    [{ file: fileWith({ prducerPort: 1 }) }, /unknown option "prducerPort"/],
    [{ file: fileWith({ batchMaxMessages: 0 }) }, /"batchMaxMessages": expected an integer from 1/],
    [
      { env: { SNAPPER_TRACK_RECEIPT_RETRY_SEC: '0' } },
      /SNAPPER_TRACK_RECEIPT_RETRY_SEC \(trackReceiptRetrySec\): expected an integer from 1/,
    ],
    [{ file: fileWith({ redis: [] }) }, /"redis": expected at least one Redis address/],
    [{ file: fileWith('{not json') }, /is not valid JSON/],
    [{ file: fileWith([1, 2]) }, /must hold a JSON object/],
    [{ file: '/nonexistent/snapper.json' }, /cannot read config file/],
    [
      { overrides: { batchMaxMessages: 2000, consumerMaxQueue: 1000 } },
      /"batchMaxMessages" must not exceed "consumerMaxQueue"/,
    ],
    [
      { env: { SNAPPER_TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/33' } },
      /SNAPPER_TRUSTED_PROXIES \(trustedProxies\): expected IP addresses or CIDR ranges/,
    ],
    [{ env: { SNAPPER_TRUSTED_PROXIES: 'nginx.local' } }, /expected IP addresses or CIDR ranges/],
    [{ overrides: { maxAuthFrameBytes: 2 << 20 } }, /"maxAuthFrameBytes" must not exceed "maxFrameBytes"/],
    [{ env: { SNAPPER_ROOM_LOG_MAX_BYTES: '1000' } }, /"maxMessageBytes" must not exceed "roomLogMaxBytes"/],
    [
      { env: { SNAPPER_MAX_QUERY_BYTES: '3073' } },
      /SNAPPER_MAX_QUERY_BYTES \(maxQueryBytes\): expected an integer from 1 to 3072/,
    ],
    [
      { env: { SNAPPER_TRACK_MAX_RECEIPTS: '10001' } },
      /SNAPPER_TRACK_MAX_RECEIPTS \(trackMaxReceipts\): expected an integer from 1 to 10000/,
    ],
  ]
  for (const [options, message] of cases)
    t.throws(() => loadConfig(options), { instanceOf: ConfigError, message })
})

test("the README's configuration section lists every option with its variable and default", t => {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  for (const [key, option] of Object.entries(OPTIONS)) {
    const row = readme.split('\n').find(line => line.startsWith(`| \`${key}\` |`))
    t.truthy(row, `README row for ${key}`)
    t.true(row!.includes(`\`${option.env}\``), `${key}: ${option.env}`)
  }
})

test('unknown SNAPPER_* variables are found, with the option variable a typo away', t => {
  const env = {
    SNAPPER_TRUSTED_PROXY: '10.0.0.1',
    SNAPPER_WORKER: '2',
    SNAPPER_SOMETHING_ELSE: 'x',
    SNAPPER_HOST: '127.0.0.1',
    SNAPPER_INTERNAL: '1',
    PATH: '/bin',
  }
  t.deepEqual(unknownVariables(env, ['SNAPPER_INTERNAL']), [
    { name: 'SNAPPER_TRUSTED_PROXY', closest: 'SNAPPER_TRUSTED_PROXIES' },
    { name: 'SNAPPER_WORKER', closest: 'SNAPPER_WORKERS' },
    { name: 'SNAPPER_SOMETHING_ELSE' },
  ])
  t.notThrows(() => loadConfig({ env }), 'a warning, not a refusal: the environment is shared')
})
