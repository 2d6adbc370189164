/**
 * The node's Redis watchdog, on a real node and a real Redis: a Redis that
 * hangs with its connection open (CLIENT PAUSE: no error, nothing queued,
 * commands just wait) and one that restarts each get one warn line and one
 * info line, and snapper_redis_up follows; a watchdog whose probe throws
 * keeps watching.
 */
import test from 'ava'
import { pino } from 'pino'
import { redisProblem } from '../../src/redis/ping.js'
import { RedisWatchdog } from '../../src/redis/watchdog.js'
import type { Logger } from '../../src/log.js'
import type { Registry } from '../../src/metrics/index.js'
import { startBroker } from '../helpers/broker.js'
import { eventually, holdsFor } from '../helpers/eventually.js'
import { startRedis } from '../helpers/redis.js'

interface Line {
  level: number
  msg: string
  redis?: string
  problem?: string
  lastAnswerAgoMs?: number
  outageMs?: number
  role?: string
  err?: { message: string }
}

function capturedLogger(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = []
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Line) },
  )
  return { logger, lines }
}

const redisUp = async (registry: Registry): Promise<number | undefined> => {
  const value = /^snapper_redis_up (\d+)$/m.exec(await registry.metrics())?.[1]
  return value === undefined ? undefined : Number(value)
}

const named = (lines: Line[], msg: string): Line[] => lines.filter(line => line.msg === msg)

test('a Redis that hangs with its connection open: one warn line and snapper_redis_up 0, then one info line with the outage and 1', async t => {
  const own = await startRedis() // a paused server would stall the other tests
  t.teardown(() => own.stop())
  const { logger, lines } = capturedLogger()
  const { registry } = await startBroker(t, own.url, { redisPingIntervalMs: 100 }, logger)
  t.is(await redisUp(registry), 1)

  await own.client().client('PAUSE', 3000, 'ALL')
  await eventually(() => named(lines, 'redis not answering').length > 0, { what: 'the warn line' })
  const [warning] = named(lines, 'redis not answering')
  t.like(warning, { level: 40, redis: own.url, problem: 'redis: no PING answer within 1000 ms' })
  t.true(warning!.lastAnswerAgoMs! >= 1000, `${warning!.lastAnswerAgoMs}`)
  t.is(await redisUp(registry), 0)

  await eventually(() => named(lines, 'redis answering again').length > 0, { what: 'the info line' })
  const [answering] = named(lines, 'redis answering again')
  t.like(answering, { level: 30, redis: own.url })
  t.true(answering!.outageMs! >= 2000 && answering!.outageMs! < 4500, `outageMs ${answering!.outageMs}`)
  t.is(await redisUp(registry), 1)
  await holdsFor(() => named(lines, 'redis not answering').length === 1, 500, 'one warn line for one outage')
  t.is(named(lines, 'redis answering again').length, 1)
})

test('a Redis restart: one warn line, each connection says it is restored, one info line once PING answers', async t => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const { logger, lines } = capturedLogger()
  const { registry } = await startBroker(t, own.url, { redisPingIntervalMs: 100 }, logger)

  await own.kill()
  await eventually(() => named(lines, 'redis not answering').length > 0, { what: 'the warn line' })
  // The connection seen closed, or (a PING sent in the moment before the client saw it) unanswered.
  t.regex(named(lines, 'redis not answering')[0]!.problem!, /^redis: (connection |no PING answer within)/)
  t.is(await redisUp(registry), 0)

  await own.restart()
  await eventually(() => named(lines, 'redis answering again').length > 0, { what: 'the info line' })
  await eventually(() => named(lines, 'redis connection restored').length >= 2, { what: 'restored lines' })
  t.deepEqual(
    named(lines, 'redis connection restored')
      .map(line => line.role)
      .sort(),
    ['commands', 'subscriber'],
  )
  t.is(await redisUp(registry), 1)
  t.is(named(lines, 'redis not answering').length, 1)
  t.is(named(lines, 'redis answering again').length, 1)
})

test('a probe that throws is logged as a bug, and the watchdog keeps asking', async t => {
  const { logger, lines } = capturedLogger()
  let calls = 0
  const watchdog = new RedisWatchdog({
    probe: () => {
      calls++
      return calls === 1 ? Promise.reject(new Error('probe bug')) : Promise.resolve(undefined)
    },
    log: logger,
    intervalMs: 10,
    server: 'redis://nowhere',
  })
  t.teardown(() => watchdog.stop())
  watchdog.start()
  await eventually(() => calls >= 3, { what: 'more probes after the throw' })
  t.like(named(lines, 'redis watchdog failed unexpectedly'), [{ level: 50, err: { message: 'probe bug' } }])
  t.true(watchdog.isUp)
})

test('after an unanswered PING the watchdog asks again within 1 s, not a whole interval later: a Redis slow for a moment is served again once it answers', async t => {
  const { logger } = capturedLogger()
  const probes: number[] = []
  const answers: boolean[] = []
  const watchdog = new RedisWatchdog({
    // Slow once (what a PING past its 1 s timeout reports), then answering.
    probe: () =>
      Promise.resolve(probes.push(Date.now()) === 1 ? 'redis: no PING answer within 1000 ms' : undefined),
    log: logger,
    intervalMs: 2500,
    server: 'redis://nowhere',
    onPing: isUp => answers.push(isUp),
  })
  t.teardown(() => watchdog.stop())
  watchdog.start()
  await eventually(() => probes.length >= 3, { what: 'three probes', timeoutMs: 10_000 })
  t.deepEqual(answers.slice(0, 2), [false, true])
  const recheckMs = probes[1]! - probes[0]!
  t.true(recheckMs >= 900 && recheckMs < 1500, `asked again after ${recheckMs} ms`)
  // Answering again: back to the configured interval.
  const nextMs = probes[2]! - probes[1]!
  t.true(nextMs >= 2400, `then after ${nextMs} ms`)
})

test('a node whose own event loop is blocked past the PING timeout does not take Redis for hung: the answer waiting on the socket counts', async t => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const { core } = await startBroker(t, own.url, { redisPingIntervalMs: 60_000 })
  t.is(await redisProblem(core.redis, 200), undefined) // its own PING connection is made and ready
  const asked = redisProblem(core.redis, 200)
  const until = Date.now() + 400 // Redis answers at once; the node reads it only after this loop
  while (Date.now() < until);
  t.is(await asked, undefined)
})

test('checkNow asks at once rather than at the next interval, once a second at most, never during a probe or while Redis is known down', async t => {
  let probes = 0
  let answer: string | undefined
  let release: (() => void) | undefined
  const watchdog = new RedisWatchdog({
    probe: () => {
      probes++
      return new Promise(resolve => (release = () => resolve(answer)))
    },
    log: pino({ level: 'silent' }),
    intervalMs: 60_000,
    server: 'test',
  })
  t.teardown(() => watchdog.stop())
  watchdog.start()
  watchdog.checkNow()
  t.is(probes, 1, 'asked at once')
  watchdog.checkNow()
  t.is(probes, 1, 'not while a probe is under way')
  answer = 'cluster_state fail'
  release!()
  await eventually(() => !watchdog.isUp, { what: 'the probe to be recorded' })
  watchdog.checkNow()
  t.is(probes, 1, 'not while Redis is known down: it asks every second then')
  await eventually(() => probes === 2, { what: 'the recheck of a Redis down' })
  answer = undefined
  release!()
  await eventually(() => watchdog.isUp, { what: 'Redis to answer again' })
  watchdog.checkNow() // more than a second after the first
  t.is(probes, 3, 'asked at once again')
  release!()
  await eventually(() => watchdog.isUp && probes === 3, { what: 'that probe to be recorded' })
  await new Promise(resolve => setImmediate(resolve)) // its finally: no probe under way
  watchdog.checkNow()
  t.is(probes, 3, 'not twice within a second')
})
