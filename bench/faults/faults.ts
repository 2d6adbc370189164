/**
 * The faults of the matrix. Each is injected into a running deployment under
 * load and returns once the deployment is whole again (restarted, back
 * online); the load goes on throughout. Durations come from the run's
 * timing, so that the short matrix in `npm test` runs the same code.
 */
import { Keys } from '../../src/redis/keys.js'
import { LeanProducer } from '../load/producer.js'
import { makeMessage, nowUs } from '../load/message.js'
import { PREFIX, SECRET, type Deployment, type Host } from './deployment.js'
import type { FaultLoad } from './load.js'

export interface Timing {
  /** Redis stays down this long (the "Redis down" fault). */
  readonly redisDownMs: number
  /** A host stays cut off from Redis this long. */
  readonly cutMs: number
  /** Consumers stop reading for this long. */
  readonly stallMs: number
  /** How many consumers stop reading. */
  readonly stalledConsumers: number
  /** The producer flood lasts this long. */
  readonly floodMs: number
}

export interface FaultContext {
  readonly deployment: Deployment
  readonly load: FaultLoad
  readonly timing: Timing
  /** A line for the run's notes (what the fault measured besides the table). */
  note(text: string): void
}

export interface Fault {
  readonly name: string
  readonly title: string
  readonly redis: 'standalone' | 'cluster'
  inject(context: FaultContext): Promise<void>
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Polls until `check` holds (at most `timeoutMs`); the fault is not over before. */
async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await sleep(100)
  }
}

const isReady = async (host: Host): Promise<boolean> =>
  fetch(`http://127.0.0.1:${host.cli.ports.admin}/readyz`).then(
    response => response.status === 200,
    () => false,
  )

/** Until `replaced` of the host's workers are new ones (its primary forks them) and the host is ready. */
const untilWorkersReplaced = (
  deployment: Deployment,
  host: Host,
  before: readonly number[],
  replaced: number,
) =>
  until(async () => {
    const now = deployment.workerPids(host)
    const fresh = now.filter(pid => !before.includes(pid)).length
    return now.length === before.length && fresh === replaced && isReady(host)
  }, `${replaced} worker(s) replaced`)

/** Redis SIGKILLed, down for `downMs`, started again on its append-only file; until every host is ready. */
async function restartRedis(deployment: Deployment, downMs: number): Promise<void> {
  await deployment.redis!.kill('SIGKILL')
  await sleep(downMs)
  await deployment.redis!.restart()
  await until(async () => (await Promise.all(deployment.hosts.map(isReady))).every(Boolean), 'hosts ready')
}

/** The last host: the one a host-wide fault hits (with one host, the only one). */
const lastHost = (deployment: Deployment): Host => deployment.hosts[deployment.hosts.length - 1]!

export const FAULTS: readonly Fault[] = [
  {
    name: 'worker-kill',
    title: 'a worker SIGKILLed',
    redis: 'standalone',
    async inject({ deployment }) {
      const host = deployment.hosts[0]!
      const before = deployment.workerPids(host)
      process.kill(before[0]!, 'SIGKILL')
      await untilWorkersReplaced(deployment, host, before, 1)
    },
  },
  {
    name: 'host-kill',
    title: 'a whole host SIGKILLed, then started again',
    redis: 'standalone',
    async inject({ deployment }) {
      const host = lastHost(deployment)
      host.cli.signalGroup('SIGKILL')
      await deployment.restartHost(host)
    },
  },
  {
    name: 'drain',
    title: 'a host drained (SIGTERM), then started again',
    redis: 'standalone',
    async inject({ deployment }) {
      const host = lastHost(deployment)
      host.cli.signal('SIGTERM')
      await deployment.restartHost(host)
    },
  },
  {
    name: 'rolling-restart',
    title: 'a rolling restart (SIGHUP) of a host',
    redis: 'standalone',
    async inject({ deployment }) {
      const host = deployment.hosts[0]!
      const before = deployment.workerPids(host)
      host.cli.signal('SIGHUP')
      await untilWorkersReplaced(deployment, host, before, before.length)
    },
  },
  {
    name: 'redis-restart',
    title: 'Redis SIGKILLed and started again on its append-only file',
    redis: 'standalone',
    inject: ({ deployment }) => restartRedis(deployment, 0),
  },
  {
    name: 'redis-down',
    title: 'Redis down, then back on its append-only file',
    redis: 'standalone',
    inject: ({ deployment, timing }) => restartRedis(deployment, timing.redisDownMs),
  },
  {
    name: 'cluster-failover',
    title: 'a Redis Cluster master SIGKILLed, its replica promoted',
    redis: 'cluster',
    async inject({ deployment, note }) {
      // The master of a room that has consumers.
      const { killed, promoted } = await deployment.cluster!.killMaster(new Keys(PREFIX).room('r0').log)
      note(`cluster-failover: killed ${killed.address}, promoted ${promoted.address}`)
    },
  },
  {
    name: 'redis-cut',
    title: 'a host cut off from Redis (its connections dropped and refused), then back',
    redis: 'standalone',
    async inject({ deployment, timing }) {
      const host = lastHost(deployment)
      host.proxy!.down()
      await sleep(timing.cutMs)
      host.proxy!.up()
      await until(() => isReady(host), 'the host is ready again')
    },
  },
  {
    name: 'stalled-consumers',
    title: 'consumers that stop reading, then read again',
    redis: 'standalone',
    async inject({ load, timing, note }) {
      await load.pool.stall(timing.stalledConsumers)
      await sleep(timing.stallMs)
      await load.pool.unstall()
      note(
        `stalled-consumers: ${timing.stalledConsumers} consumers stopped reading for ${timing.stallMs / 1000} s`,
      )
    },
  },
  {
    name: 'producer-flood',
    title: 'a producer flood at 5× the measured ingest capacity',
    redis: 'standalone',
    async inject({ deployment, timing, note }) {
      const ports = deployment.producerPorts
      const flooders = await Promise.all(
        [0, 1, 2, 3].map(i => LeanProducer.connect('127.0.0.1', ports[i % ports.length]!, SECRET)),
      )
      try {
        const capacity = await ingestCapacity(flooders)
        const taken = await flood(flooders, 5 * capacity, timing.floodMs)
        note(
          `producer-flood: ingest capacity ${Math.round(capacity)} msg/s (4 producers, frames of ` +
            `${FRAME_MESSAGES} notifications, 2 s until stored); flood offered at ${Math.round(5 * capacity)} ` +
            `msg/s for ${timing.floodMs / 1000} s, taken at ${Math.round(taken)} msg/s until stored ` +
            '(past producerMaxPending a connection is not read: the flooders wait on their sockets)',
        )
      } finally {
        for (const flooder of flooders) flooder.close()
      }
    },
  },
]

/** Messages per frame, as snapper-producer batches them (up to 51). */
const FRAME_MESSAGES = 50

/**
 * Stored messages per second: every flooder publishes notifications as fast
 * as the broker reads them for 2 s, then waits until all are stored.
 */
async function ingestCapacity(producers: readonly LeanProducer[]): Promise<number> {
  const started = Date.now()
  let sent = 0
  await Promise.all(
    producers.map(async (producer, p) => {
      for (let seq = 1; Date.now() - started < 2000; seq += FRAME_MESSAGES) {
        if (!producer.publish(frameOf(`capacity${p}`, seq))) await producer.drain()
        sent += FRAME_MESSAGES
      }
      await producer.settle()
    }),
  )
  return sent / ((Date.now() - started) / 1000)
}

const frameOf = (room: string, seq: number): [string, string][] =>
  Array.from({ length: FRAME_MESSAGES }, (_, i) => [room, makeMessage(seq + i, nowUs(), 100)])

/**
 * Offers `ratePerSec` messages for `ms`, waiting on the socket whenever the
 * broker stops reading; returns the rate it took them at (until all stored).
 */
async function flood(producers: readonly LeanProducer[], ratePerSec: number, ms: number): Promise<number> {
  const started = Date.now()
  let sent = 0
  await Promise.all(
    producers.map(async (producer, p) => {
      const framesPerSec = ratePerSec / FRAME_MESSAGES / producers.length
      for (let frame = 1; Date.now() - started < ms; frame++) {
        const due = started + (frame / framesPerSec) * 1000
        if (due > Date.now()) await sleep(Math.min(due - Date.now(), 50))
        if (!producer.publish(frameOf(`flood${p}`, frame * FRAME_MESSAGES))) await producer.drain()
        sent += FRAME_MESSAGES
      }
      await producer.settle()
    }),
  )
  return sent / ((Date.now() - started) / 1000)
}
