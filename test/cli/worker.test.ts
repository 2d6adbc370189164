/**
 * The config a primary hands its workers crosses an environment variable:
 * it reads back as itself, and anything else is refused with the reason,
 * as a config file would be.
 */
import test from 'ava'
import { workerEnvironment, readWorkerEnvironment } from '../../src/cli/worker.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'

const loaded = loadConfig({
  env: {
    SNAPPER_TOKEN_SECRETS: 'first,second',
    SNAPPER_REDIS: 'redis://10.0.0.1:7000,redis://10.0.0.2:7000',
    SNAPPER_WORKERS: '3',
    SNAPPER_LOG_LEVEL: 'warn',
    SNAPPER_DEMO: 'yes',
  },
})

test('a config written for a worker reads back as itself (a cluster and a single Redis)', t => {
  for (const config of [loaded, loadConfig({ env: { SNAPPER_WORKERS: '2' } })]) {
    const read = readWorkerEnvironment(workerEnvironment(config, 1))
    t.deepEqual(read, { config, index: 1 })
    t.true(Object.isFrozen(read.config))
  }
})

test('a worker config that is not what the primary wrote is refused, naming what is wrong', t => {
  const env = workerEnvironment(loaded, 0)
  const tampered = (change: (config: Record<string, unknown>) => void): Record<string, string> => {
    const config = JSON.parse(env.SNAPPER_WORKER_CONFIG!) as Record<string, unknown>
    change(config)
    return { ...env, SNAPPER_WORKER_CONFIG: JSON.stringify(config) }
  }
  const cases: [Record<string, string | undefined>, RegExp][] = [
    [{ ...env, SNAPPER_WORKER_CONFIG: undefined }, /SNAPPER_WORKER_CONFIG.*must hold a JSON object/],
    [
      { ...env, SNAPPER_WORKER_CONFIG: '{"producerPort": 77' },
      /SNAPPER_WORKER_CONFIG.*must hold a JSON object/,
    ],
    [tampered(config => (config.producerPort = 'seven')), /"producerPort": expected an integer/],
    [tampered(config => (config.tokenSecrets = [1])), /"tokenSecrets": expected a list of strings/],
    [tampered(config => (config.secret = 'x')), /unknown option "secret"/],
    [tampered(config => (config.batchMaxMessages = 10 ** 6)), /"batchMaxMessages" must not exceed/],
    [{ ...env, SNAPPER_WORKER_INDEX: '3' }, /SNAPPER_WORKER_INDEX: expected a worker index below 3, got 3/],
    [{ ...env, SNAPPER_WORKER_INDEX: undefined }, /SNAPPER_WORKER_INDEX/],
  ]
  for (const [environment, message] of cases)
    t.throws(() => readWorkerEnvironment(environment), { instanceOf: ConfigError, message }, String(message))
})
