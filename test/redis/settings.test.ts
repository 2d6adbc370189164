/**
 * A node says at start when its Redis may lose Snapper's keys: a
 * maxmemory-policy other than noeviction, on one Redis or on any master of a
 * Cluster (README, Deployment: Redis settings). A Redis that hides CONFIG is
 * taken on trust.
 */
import test, { type ExecutionContext } from 'ava'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import type { RedisTarget } from '../../src/config/defaults.js'
import { startBroker } from '../helpers/broker.js'
import { eventually } from '../helpers/eventually.js'
import { startRedis } from '../helpers/redis.js'
import { redisPerFile } from '../helpers/topology.js'

const redis = redisPerFile(test)

interface Line {
  readonly level: number
  readonly msg: string
  readonly server?: string
  readonly policy?: string
}

/** Starts a node on `target` and returns its log lines at info and above, once the settings check has logged (or not). */
async function startLines(t: ExecutionContext, target: RedisTarget | string): Promise<Line[]> {
  const lines: Line[] = []
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Line) },
  )
  await startBroker(t, target, {}, logger)
  await eventually(() => lines.some(line => line.msg === 'node started'), { what: 'the node to start' })
  await new Promise(resolve => setTimeout(resolve, 300)) // the check runs beside the start
  return lines
}

const evictionWarnings = (lines: readonly Line[]): Line[] =>
  lines.filter(line => line.level === 40 && /maxmemory-policy/.test(line.msg))

test('one Redis: allkeys-lru is warned about at start, naming the server and the policy; noeviction is not', async t => {
  const server = await startRedis(['--maxmemory-policy', 'allkeys-lru'])
  t.teardown(() => server.stop())
  const warned = evictionWarnings(await startLines(t, server.url))
  t.is(warned.length, 1)
  t.like(warned[0], { server: `127.0.0.1:${server.port}`, policy: 'allkeys-lru' })
  t.deepEqual(evictionWarnings(await startLines(t, redis.target('standalone'))), [])
})

test('Redis Cluster: the one master whose policy evicts (volatile-lru) is warned about', async t => {
  const { cluster } = redis
  const master = await cluster.masterOf(0)
  const admin = new Redis(master.port, '127.0.0.1')
  t.teardown(async () => {
    await admin.config('SET', 'maxmemory-policy', 'noeviction')
    admin.disconnect()
  })
  await admin.config('SET', 'maxmemory-policy', 'volatile-lru')
  const warned = evictionWarnings(await startLines(t, redis.target('cluster')))
  t.is(warned.length, 1)
  t.like(warned[0], { server: master.address, policy: 'volatile-lru' })
})

test('a Redis that hides CONFIG: an info line says to check the policy, no warning, and the node starts', async t => {
  const server = await startRedis(['--rename-command', 'CONFIG', '""'])
  t.teardown(() => server.stop())
  const lines = await startLines(t, server.url)
  t.deepEqual(evictionWarnings(lines), [])
  t.true(lines.some(line => line.level === 30 && /could not read maxmemory-policy/.test(line.msg)))
})
