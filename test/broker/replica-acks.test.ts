/**
 * redisReplicaAcks: a publish is answered only once WAIT on each master the
 * batch went to saw that many replicas take it; fewer in time (1 s) fail the
 * publish with STORE_UNAVAILABLE instead of acknowledging it.
 */
import test, { type ExecutionContext } from 'ava'
import { pino } from 'pino'
import { SnapperError } from '../../src/errors.js'
import { RecordingSink, startTestNode } from '../helpers/broker.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { redisPerFile } from '../helpers/topology.js'

const redis = redisPerFile(test)

const batch = (rooms: string[], perRoom: number): [string, string][] =>
  rooms.flatMap(room => Array.from({ length: perRoom }, (_, i): [string, string] => [room, `${room}:${i}`]))

test('cluster: a batch over rooms of every master is answered once their replicas have it', async t => {
  const { core, config } = await startTestNode(t, redis.target('cluster'), { redisReplicaAcks: 1 })
  const rooms = Array.from({ length: 30 }, (_, i) => `acked-${i}`)
  const masters = new Set(
    await Promise.all(rooms.map(async room => (await redis.cluster.masterOf(core.keys.room(room).log)).port)),
  )
  t.is(masters.size, 3, 'the batch spans the three masters (one WAIT each)')
  t.is(await core.producerApi.publish(batch(rooms, 3)), 90)
  for (const room of rooms)
    t.deepEqual(
      (await core.log.read(room, { ms: 0, seq: 0 }, 10)).map(entry => entry.message),
      [0, 1, 2].map(i => `${room}:${i}`),
    )
  t.is(config.redisReplicaAcks, 1)
})

test('cluster: a join past maxRoomsPerConsumer through the group commit is refused with CONSUMER_ROOMS_FULL, nothing written', async t => {
  const { core } = await startTestNode(t, redis.target('cluster'), {
    redisReplicaAcks: 1,
    maxRoomsPerConsumer: 1,
  })
  t.is(await core.producerApi.subscribe('first', 'c1'), 1)
  const err = await t.throwsAsync(core.producerApi.subscribe('second', 'c1'), { instanceOf: SnapperError })
  t.is(err?.code, 'CONSUMER_ROOMS_FULL')
  t.deepEqual(Object.keys(await core.redis.commands.hgetall(core.keys.consumer('c1').rooms)), ['first'])
})

test('cluster: more acks than replicas: the publish fails with STORE_UNAVAILABLE', async t => {
  const { core } = await startTestNode(t, redis.target('cluster'), { redisReplicaAcks: 2 })
  const err = await t.throwsAsync(core.producerApi.publish([['two-replicas', 'm']]), {
    instanceOf: SnapperError,
  })
  t.is(err?.code, 'STORE_UNAVAILABLE')
})

test('standalone without a replica: the publish fails with STORE_UNAVAILABLE after the WAIT timeout', async t => {
  const { core } = await startTestNode(t, redis.target('standalone'), { redisReplicaAcks: 1 })
  const started = Date.now()
  const err = await t.throwsAsync(core.producerApi.publish([['alone', 'm']]), { instanceOf: SnapperError })
  t.is(err?.code, 'STORE_UNAVAILABLE')
  t.true(Date.now() - started >= 900, 'WAIT waited for its timeout')
})

test('standalone without a replica: a join or leave fails with STORE_UNAVAILABLE after the WAIT timeout, though the master has it', async t => {
  const { core } = await startTestNode(t, redis.target('standalone'), { redisReplicaAcks: 1 })
  const roomOfRecord = (): Promise<string | null> =>
    core.redis.commands.hget(core.keys.consumer('c1').rooms, 'room')
  for (const [change, expected] of [
    [() => core.producerApi.subscribe('room', 'c1'), true],
    [() => core.producerApi.unsubscribe('room', 'c1'), false],
  ] as const) {
    const started = Date.now()
    const err = await t.throwsAsync(change(), { instanceOf: SnapperError })
    t.is(err?.code, 'STORE_UNAVAILABLE')
    t.true(Date.now() - started >= 900, 'WAIT waited for its timeout')
    t.is((await roomOfRecord()) !== null, expected)
  }
})

test('standalone with a replica: the answer comes once the replica holds the messages', async t => {
  // Its own master: a full sync starts at once instead of after Redis's 5 s diskless-sync delay.
  const master = await startRedis(['--repl-diskless-sync-delay', '0'])
  t.teardown(() => master.stop())
  const replica = await startRedis([
    '--replicaof',
    '127.0.0.1',
    String(master.port),
    '--enable-debug-command',
    'yes',
  ])
  t.teardown(() => replica.stop())
  const replicaClient = replica.client()
  // Start once the replication stream flows: a write that WAIT sees the replica confirm.
  const masterClient = master.client()
  for (;;) {
    await masterClient.set('probe', 'x')
    if ((await masterClient.wait(1, 1000)) === 1) break
  }
  const { core } = await startTestNode(t, master.url, { redisReplicaAcks: 1 })
  // The replica stalls for 0.5 s (sent before the publish, so it stalls before it replicates).
  const stalled = replicaClient.call('DEBUG', 'SLEEP', '0.5')
  const started = Date.now()
  t.is(await core.producerApi.publish(batch(['one', 'two'], 5)), 10)
  t.true(Date.now() - started >= 400, 'answered only after the replica woke up and confirmed')
  await stalled
  // No waiting here: the answer itself says the replica has them.
  for (const room of ['one', 'two']) {
    const entries = await replicaClient.xrange(core.keys.room(room).log, '-', '+')
    t.deepEqual(
      entries.map(([, fields]) => fields[1]),
      [0, 1, 2, 3, 4].map(i => `${room}:${i}`),
    )
  }
})

test('standalone: writes refused for too few replicas are logged once at warn, with the counts, until a replica confirms; a full Redis still at error', async t => {
  const master = await startRedis(['--repl-diskless-sync-delay', '0'])
  t.teardown(() => master.stop())
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const { core } = await startTestNode(t, master.url, { redisReplicaAcks: 1 }, logger)
  const SHORT = 'too few redis replicas confirm writes'
  const AGAIN = 'redis replicas confirm writes again'
  const FAILED = 'redis command failed'
  const told = (): Record<string, unknown>[] =>
    lines.filter(({ msg }) => msg === SHORT || msg === AGAIN || msg === FAILED)

  // No replica: publishes, joins and leaves refused one after the other (each WAIT waits 1 s).
  const api = core.producerApi
  const writes = [
    () => api.publish([['room', 'a']]),
    () => api.subscribe('room', 'c1'),
    () => api.unsubscribe('room', 'c1'),
    () => api.publish([['room', 'b']]),
  ]
  for (const write of writes) {
    const err = await t.throwsAsync(write(), { instanceOf: SnapperError })
    t.like(err, {
      code: 'STORE_UNAVAILABLE',
      reason:
        '0 of 1 Redis replicas confirmed in time (redisReplicaAcks): the master has it, a failover may lose it',
    })
  }
  t.like(told(), [{ level: 40, msg: SHORT, server: 'main', confirmed: 0, redisReplicaAcks: 1 }])
  t.is(told().length, 1, 'one line for four refusals')

  // A replica comes: the next write is answered, and one line says how many were refused meanwhile.
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port)])
  t.teardown(() => replica.stop())
  const masterClient = master.client()
  while ((await masterClient.wait(1, 100)) < 1) await masterClient.set('probe', 'x')
  t.is(await api.publish([['room', 'c']]), 1)
  t.is(told().length, 2)
  t.like(told()[1], { level: 30, msg: AGAIN, server: 'main', waitsRefused: 4 })
  t.true((told()[1]!.forMs as number) >= 3000, 'from the first refusal')

  // A full Redis is not a shortfall of replicas: its refusal says so, at error.
  await masterClient.config('SET', 'maxmemory', '1')
  t.teardown(() => masterClient.config('SET', 'maxmemory', '0'))
  const full = await t.throwsAsync(api.publish([['room', 'd']]), { instanceOf: SnapperError })
  t.like(full, {
    code: 'STORE_UNAVAILABLE',
    reason: 'Redis is out of memory (maxmemory reached): nothing was stored',
  })
  t.like(told()[2], { level: 50, msg: FAILED })
  t.is(told().length, 3)
})

/** A master with one replica whose stream flows (a write WAIT sees it confirm); stopped at the test's end. */
async function replicatedRedis(t: ExecutionContext): Promise<{ master: RedisServer; replica: RedisServer }> {
  const master = await startRedis(['--repl-diskless-sync-delay', '0'])
  t.teardown(() => master.stop())
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port)])
  t.teardown(() => replica.stop())
  const masterClient = master.client()
  while ((await masterClient.wait(1, 1000)) < 1) await masterClient.set('probe', 'x')
  return { master, replica }
}

const SHORTFALL =
  '0 of 1 Redis replicas confirmed in time (redisReplicaAcks): the master has it, a failover may lose it'

test('standalone, its replica stopped: publishes and joins made in separate turns are all refused within two WAITs, not one second each', async t => {
  const { master, replica } = await replicatedRedis(t)
  const { core } = await startTestNode(t, master.url, { redisReplicaAcks: 1 })
  replica.signal('SIGSTOP')
  t.teardown(() => replica.signal('SIGCONT'))
  const api = core.producerApi
  const started = Date.now()
  const answeredMs: number[] = []
  const writes: Promise<unknown>[] = []
  for (let i = 0; i < 10; i++) {
    const write = i % 3 === 2 ? api.subscribe(`room-${i}`, `c${i}`) : api.publish([[`room-${i}`, `m${i}`]])
    writes.push(write.finally(() => answeredMs.push(Date.now() - started)))
    await new Promise(resolve => setImmediate(resolve)) // the next one in a turn of its own
  }
  for (const result of await Promise.allSettled(writes)) {
    t.is(result.status, 'rejected')
    if (result.status === 'rejected') t.like(result.reason, { code: 'STORE_UNAVAILABLE', reason: SHORTFALL })
  }
  t.log(`answered after ${answeredMs.join(', ')} ms`)
  // The first WAIT in flight takes its second; every write made meanwhile goes in the next pipeline, with one WAIT.
  t.true(Math.max(...answeredMs) < 2 * 1000 + 800, `answered after ${answeredMs.join(', ')} ms`)
  t.true(Math.min(...answeredMs) >= 900, 'each waited for a WAIT timeout')
  // The master has them all: the joins too.
  for (let i = 2; i < 10; i += 3)
    t.is(await core.redis.commands.hget(core.keys.consumer(`c${i}`).rooms, `room-${i}`), '0-0')
})

test('standalone, its replica stopped for 10 s under a steady publisher: the backlog stays small, and once it is back every message reaches the consumer once, in order', async t => {
  const { master, replica } = await replicatedRedis(t)
  const RATE_PER_SEC = 50
  const MESSAGE = 'x'.repeat(1000)
  // Five seconds of this publisher: one WAIT a second per publish would fill it in half the outage.
  const maxBytes = 5 * RATE_PER_SEC * (MESSAGE.length + 8)
  const { core, node } = await startTestNode(t, master.url, {
    redisReplicaAcks: 1,
    publishMaxPendingBytes: maxBytes,
  })
  const sink = await new RecordingSink(node).connect('steady-consumer', 'u1')
  t.is(await core.producerApi.subscribe('steady', 'steady-consumer'), 1)

  replica.signal('SIGSTOP')
  t.teardown(() => replica.signal('SIGCONT'))
  const outcomes: Promise<unknown>[] = []
  const sent: string[] = []
  let peakBytes = 0
  const until = Date.now() + 10_000
  for (let i = 0; Date.now() < until; i++) {
    const message = `${String(i).padStart(6, '0')}${MESSAGE}`
    sent.push(message)
    outcomes.push(core.producerApi.publish([['steady', message]]))
    peakBytes = Math.max(peakBytes, core.producerApi.backlog.bytes)
    await new Promise(resolve => setTimeout(resolve, 1000 / RATE_PER_SEC))
  }
  replica.signal('SIGCONT')
  const results = await Promise.allSettled(outcomes)
  const reasons = results.map(result => (result.status === 'rejected' ? result.reason.reason : 'stored'))
  const numbers = `${sent.length} publishes, peak backlog ${peakBytes} bytes`
  t.log(`${numbers}; ${reasons.filter(reason => reason === SHORTFALL).length} refused for the replica`)
  // The last ones are confirmed once the replica catches up.
  const others = reasons.filter(reason => reason !== SHORTFALL && reason !== 'stored')
  t.deepEqual(others, [], `refused for the replica or stored, never for a full backlog: ${numbers}`)
  t.true(reasons.includes(SHORTFALL))
  // Two WAITs' worth of publishes at most wait at once.
  const bytesPerSec = RATE_PER_SEC * (MESSAGE.length + 'steady'.length + 6)
  t.true(peakBytes <= 3 * bytesPerSec, numbers)

  await sink.waitFor(sent.length, 20_000)
  t.deepEqual(sink.messages, sent, 'every message once, in order')
})
