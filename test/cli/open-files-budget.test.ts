import test from 'ava'
import { defaults } from '../../src/config/defaults.js'
import { filesBudgets, fitWithin, OWN_FILES } from '../../src/cli/open-files-budget.js'

const config = { ...defaults, maxSessions: 1000, maxProducerConnections: 500, adminMaxConnections: 300 }

test('one node holds every connection, the reserve, 4 Redis connections and its own files', t => {
  const [node, ...others] = filesBudgets({ ...config, workers: 0 }, 2000)
  t.is(others.length, 0)
  t.deepEqual(node, {
    process: 'node',
    parts: {
      maxSessions: 1000,
      maxProducerConnections: 500,
      adminMaxConnections: 300,
      openFilesReserve: 128,
      redisConnections: 4,
      ownFiles: OWN_FILES,
    },
    filesNeeded: 1000 + 500 + 300 + 128 + 4 + OWN_FILES,
  })
})

test("with workers the admin connections are the primary's; a Cluster counts 4 connections per seed; the reserve is at most a quarter of the limit", t => {
  const cluster = { kind: 'cluster', nodes: ['redis://a:1', 'redis://b:2', 'redis://c:3'] } as const
  const [worker, primary] = filesBudgets({ ...config, workers: 4, redis: cluster }, 400)
  t.deepEqual(worker?.parts, {
    maxSessions: 1000,
    maxProducerConnections: 500,
    openFilesReserve: 100,
    redisConnections: 12,
    ownFiles: OWN_FILES,
  })
  t.deepEqual(primary?.parts, {
    adminMaxConnections: 300,
    redisConnections: 12,
    workerChannels: 4,
    ownFiles: OWN_FILES,
  })
  t.is(primary?.filesNeeded, 300 + 12 + 4 + OWN_FILES)
  const [, noAdmin] = filesBudgets({ ...config, workers: 4, adminPort: 0 }, 2000)
  t.deepEqual(noAdmin?.parts, { redisConnections: 0, workerChannels: 4, ownFiles: OWN_FILES })
})

test('the fit lowers the largest connection setting by the excess, or only raises the limit when lowering one cannot do', t => {
  const [node] = filesBudgets({ ...config, workers: 0 }, 2000)
  t.deepEqual(fitWithin(node!, 1500), {
    lower: 'maxSessions',
    lowerTo: 1000 - (node!.filesNeeded - 1500),
    raiseLimitTo: node!.filesNeeded,
  })
  t.deepEqual(fitWithin(node!, 900), { raiseLimitTo: node!.filesNeeded })
  const [, primary] = filesBudgets({ ...config, workers: 2, adminMaxConnections: 5000 }, 2000)
  t.like(fitWithin(primary!, 2000), {
    lower: 'adminMaxConnections',
    lowerTo: 5000 - (primary!.filesNeeded - 2000),
  })
})
