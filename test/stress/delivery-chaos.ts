/**
 * `node dist/test/stress/delivery-chaos.js [seed] [seconds]`
 *
 * A seeded chaos run of the core promise: every message a producer got a
 * success answer for reaches every consumer that was in its room for the
 * whole publish, exactly once, in publish order per room. NODES (3) real
 * `snapper start --workers 1` processes on one redis-server (CLUSTER=1: a
 * Redis Cluster of 3 masters with a replica each), snapper-consumer@1.3.6
 * clients (USERS users with two consumers each, in their user rooms; every
 * other one websocket only) that reconnect by themselves, to any node up,
 * and snapper-producer@2.1.1 connections publishing steadily to every room
 * (each room's publishes one at a time). Every 1-3 s the seed draws a fault:
 * a node SIGKILLed and started again, a node SIGSTOPped 2-8 s, Redis
 * `CLIENT PAUSE` 1-3 s, `CLIENT KILL TYPE pubsub` or `TYPE normal`, a
 * consumer's socket destroyed, joins and leaves of SHARED (3) rooms. The
 * seed fixes the choices, not the timing. Not run by `npm test`
 * (docs/RELIABILITY.md, Chaos runs). After a quiet period it reports, with
 * the fault timeline around each: lost (owed, never received), duplicated,
 * reordered and unexpected (received from a room left before the publish)
 * messages. A duplicate whose first copy came from a node SIGKILLed or
 * SIGSTOPped within a cursor flush after it (plus any Redis pause meanwhile),
 * the copy after that, is counted apart: README "After a node crash". Exit
 * code 1 on any violation; VERBOSE=1 prints the fault timeline as it goes.
 */
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
import Producer from 'snapper-producer'
import { startCli, type RunningCli } from '../helpers/cli.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'
import { startRedisCluster } from '../helpers/redis-cluster.js'
import { call, TEST_SECRET } from '../helpers/broker.js'
import { seededRandom } from '../helpers/seeded-random.js'

const require = createRequire(import.meta.url)

const seed = Number(process.argv[2] ?? 1)
const SECONDS = Number(process.argv[3] ?? 60)
const NODES = Number(process.env.NODES ?? 3)
const USERS = Number(process.env.USERS ?? 4)
const SHARED = Number(process.env.SHARED ?? 3)
const IS_CLUSTER = process.env.CLUSTER === '1'
/** How long a publish or a join waits for its answer before the next one goes (a late answer still counts). */
const ANSWER_WAIT_MS = 2000
/**
 * A duplicate whose first copy came from a node SIGKILLed (or SIGSTOPped, then taken over) this soon
 * after is README's "After a node crash": a cursor flush (1 s) and a margin.
 */
const CRASH_WINDOW_MS = 1000 + 1000

const pick = <T>(items: readonly T[], draw: () => number): T => items[Math.floor(draw() * items.length)]!
const between = (min: number, max: number, draw: () => number): number =>
  Math.floor(min + draw() * (max - min))
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const began = performance.now()
const now = (): number => performance.now() - began
const at = (ms: number): string => `${(ms / 1000).toFixed(2)}s`

/** Redis CLIENT PAUSEs: no cursor flush completes in them. */
const pauses: { from: number; to: number }[] = []
const pausedMs = (from: number, to: number): number =>
  pauses.reduce((sum, p) => sum + Math.max(0, Math.min(to, p.to) - Math.max(from, p.from)), 0)

const timeline: { at: number; text: string }[] = []
const record = (text: string): void => {
  timeline.push({ at: now(), text })
  if (process.env.VERBOSE) console.log(at(now()), text)
}

// ---- nodes ----------------------------------------------------------------------------------------

interface Slot {
  readonly index: number
  cli: RunningCli | undefined
  state: 'up' | 'stopped' | 'down'
  /** Bumped at each start: which life of the node delivered a message. */
  generation: number
  /** When each life of the node was SIGKILLed or SIGSTOPped: what it had not flushed may come again. */
  interrupted: { generation: number; at: number; kind: 'SIGKILL' | 'SIGSTOP' }[]
  producer: Producer | undefined
  ports: { gateway: number; producer: number; admin: number } | undefined
}

const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) }

// ---- consumers ------------------------------------------------------------------------------------

interface SnapperConsumer {
  url: string
  consumerId: string | null
  connected: boolean
  reconnectionTime: number
  connection: {
    port?: string
    transport?: { name: string; ws?: { _socket?: { destroy(): void } } }
    on(event: string, listener: (...args: unknown[]) => void): void
  } | null
  onopen: () => void
  onerror: (error: unknown) => void
  onmessage: (event: { type: string; data: { method?: string; params?: unknown; id?: unknown } }) => void
  connect(): unknown
  close(): void
}
const SnapperConsumerClass = require('snapper-consumer') as new (
  url: string,
  options: object,
) => SnapperConsumer

interface Receipt {
  readonly text: string
  readonly at: number
  readonly slot: number
  readonly generation: number
}

class ChaosConsumer {
  readonly client: SnapperConsumer
  readonly received: Receipt[] = []
  readonly gaps: string[] = []
  readonly events: { at: number; text: string }[] = []
  id = ''
  firstOpenAt = Infinity
  slot = -1
  generation = 0
  opens = 0

  constructor(
    readonly name: string,
    readonly userId: string,
    token: string,
    readonly isWebsocketOnly: boolean,
    slot: Slot,
  ) {
    this.client = new SnapperConsumerClass(urlOf(slot), {
      path: '/websocket',
      token,
      ...(isWebsocketOnly && { transports: ['websocket'] }),
    })
    this.client.onopen = () => {
      this.client.reconnectionTime = 300 // its default waits 11-60 s
      const id = this.client.consumerId ?? ''
      if (this.id && id !== this.id) this.log(`consumer id changed from ${this.id} to ${id}`)
      this.id = id
      this.firstOpenAt = Math.min(this.firstOpenAt, now())
      this.opens++
      // The port this connection went to: the url may have changed since it began.
      this.slot = slots.findIndex(
        slot => String(slot.ports?.gateway) === String(this.client.connection?.port),
      )
      this.generation = slots[this.slot]!.generation
      this.log(`open on node ${this.slot}.${this.generation}`)
      this.client.connection?.on('close', reason => this.log(`closed: ${String(reason)}`))
    }
    this.client.onerror = () => {} // a refused or failed connect: it tries again by itself
    this.client.onmessage = event => {
      if (event.type === 'request' && event.data.method === 'publish') {
        for (const text of event.data.params as string[])
          this.received.push({ text, at: now(), slot: this.slot, generation: this.generation })
      } else if (event.type === 'notification' && event.data.method === 'gap') {
        this.gaps.push(JSON.stringify(event.data.params))
        this.log(`gap ${JSON.stringify(event.data.params)}`)
      }
    }
    this.client.connect()
  }

  log(text: string): void {
    this.events.push({ at: now(), text })
  }

  /** Destroys the TCP socket under the websocket: no close frame, as a network cut. */
  cut(): boolean {
    const socket = this.client.connection?.transport?.ws?._socket
    if (!this.client.connected || !socket) return false
    socket.destroy()
    this.log('socket destroyed')
    return true
  }
}

const slots: Slot[] = []
const urlOf = (slot: Slot): string => `http://127.0.0.1:${slot.ports!.gateway}`
const slotOfUrl = (url: string): number => slots.findIndex(slot => slot.ports && urlOf(slot) === url)

// ---- what was asked and answered ----------------------------------------------------------------

interface Publish {
  readonly room: string
  readonly text: string
  readonly start: number
  end: number // Infinity until answered with success
  status: 'pending' | 'ok' | 'error'
  readonly slot: number
}

interface MembershipOp {
  readonly kind: 'join' | 'leave'
  readonly start: number
  end: number // Infinity until answered; an error leaves it so (its effect is unknown)
  result?: unknown
}

const publishes = new Map<string, Publish>()
const ops = new Map<string, MembershipOp[]>() // `${consumer name} ${room}`
const counts = {
  published: 0,
  answered: 0,
  publishErrors: 0,
  joins: 0,
  leaves: 0,
  opErrors: 0,
  kill: 0,
  stop: 0,
  pause: 0,
  killPubsub: 0,
  killNormal: 0,
  cut: 0,
  membership: 0,
}

let messageNumber = 0
let isRunning = true

const liveProducer = (draw: () => number): Slot | undefined => {
  const ready = slots.filter(
    slot =>
      slot.state === 'up' &&
      slot.producer &&
      (slot.producer as unknown as { conn: { connected: boolean } }).conn.connected,
  )
  return ready.length > 0 ? pick(ready, draw) : undefined
}

/** Waits for `promise` at most `ms`; it goes on regardless. */
const upTo = (promise: Promise<unknown>, ms: number): Promise<unknown> =>
  Promise.race([promise.catch(() => {}), sleep(ms)])

async function publishLoop(room: string, tag: string, draw: () => number): Promise<void> {
  while (isRunning) {
    const slot = liveProducer(draw)
    if (!slot) {
      await sleep(50)
      continue
    }
    const text = `${tag}|${++messageNumber}`
    const publish: Publish = { room, text, start: now(), end: Infinity, status: 'pending', slot: slot.index }
    publishes.set(text, publish)
    counts.published++
    const answer = call(slot.producer!.request('publish', [[room, text]]) as never).then(
      result => {
        if (result === 1) {
          publish.end = now()
          publish.status = 'ok'
          counts.answered++
        } else publish.status = 'error'
      },
      () => {
        publish.status = 'error'
        counts.publishErrors++
      },
    )
    await upTo(answer, ANSWER_WAIT_MS)
    await sleep(between(20, 120, draw))
  }
}

async function membershipOp(
  consumer: ChaosConsumer,
  room: string,
  kind: 'join' | 'leave',
  draw: () => number,
): Promise<void> {
  let slot = liveProducer(draw)
  while (!slot) {
    await sleep(50)
    slot = liveProducer(draw)
  }
  const key = `${consumer.name} ${room}`
  const op: MembershipOp = { kind, start: now(), end: Infinity }
  ops.set(key, [...(ops.get(key) ?? []), op])
  counts[kind === 'join' ? 'joins' : 'leaves']++
  consumer.log(`${kind} ${room} sent through node ${slot.index}`)
  const answer = call(
    (kind === 'join'
      ? slot.producer!.joinRoom(room, consumer.id)
      : slot.producer!.leaveRoom(room, consumer.id)) as never,
  ).then(
    result => {
      op.end = now()
      op.result = result
      consumer.log(`${kind} ${room} answered ${String(result)}`)
    },
    err => {
      counts.opErrors++
      consumer.log(`${kind} ${room} failed: ${String(err)}`)
    },
  )
  await upTo(answer, ANSWER_WAIT_MS)
}

// ---- main -------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const prefix = uniquePrefix()
  let redisEnv: string
  let admins: Redis[]
  let stopRedis: () => Promise<void>
  if (IS_CLUSTER) {
    const cluster = await startRedisCluster()
    redisEnv = cluster.nodes.map(node => node.address).join(',')
    admins = cluster.nodes.map(node => cluster.nodeClient(node.port))
    stopRedis = () => cluster.stop()
  } else {
    const redis = await startRedis()
    redisEnv = redis.url
    admins = [redis.client()]
    stopRedis = () => redis.stop()
  }
  const env = (slot: Slot): Record<string, string> => ({
    SNAPPER_REDIS: redisEnv,
    SNAPPER_REDIS_PREFIX: prefix,
    SNAPPER_TOKEN_SECRETS: TEST_SECRET,
    SNAPPER_DRAIN_SPREAD_MS: '0',
    // Clients notice a frozen node in ~3 s and move on, while it still holds their sessions.
    SNAPPER_PING_INTERVAL_MS: '1000',
    SNAPPER_PING_TIMEOUT_MS: '2000',
    ...(slot.ports && {
      SNAPPER_GATEWAY_PORT: String(slot.ports.gateway),
      SNAPPER_PRODUCER_PORT: String(slot.ports.producer),
      SNAPPER_ADMIN_PORT: String(slot.ports.admin),
    }),
  })
  const startSlot = async (slot: Slot): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        slot.cli = await startCli(t, { workers: 1, env: env(slot) })
        break
      } catch (err) {
        if (attempt >= 5) throw err
        record(`node ${slot.index} failed to start (${String(err).slice(0, 200)}), again`)
        await sleep(500)
      }
    }
    slot.ports = { ...slot.cli.ports }
    slot.generation++
    slot.state = 'up'
    if (!slot.producer) {
      const producer = new Producer(slot.ports.producer, {
        secretKeys: [TEST_SECRET],
        producerId: `p${slot.index}`,
      })
      producer.on('error', () => {}) // it reconnects by itself
      slot.producer = producer
    }
    record(`node ${slot.index}.${slot.generation} up`)
  }
  for (let index = 0; index < NODES; index++) {
    const slot: Slot = {
      index,
      cli: undefined,
      state: 'down',
      generation: 0,
      interrupted: [],
      producer: undefined,
      ports: undefined,
    }
    slots.push(slot)
    await startSlot(slot)
  }
  const upSlots = (): Slot[] => slots.filter(slot => slot.state === 'up')

  // Consumers: two per user, spread over the nodes.
  const signer = slots[0]!.producer!
  const consumers: ChaosConsumer[] = []
  for (let u = 0; u < USERS; u++) {
    const userId = `5${String(seed).padStart(6, '0')}${String(u).padStart(2, '0')}`.padEnd(24, 'b')
    for (let k = 0; k < 2; k++) {
      const token = signer.signAuth({ userId, exp: Math.floor(Date.now() / 1000) + 86_400 + k })
      consumers.push(new ChaosConsumer(`c${u}.${k}`, userId, token, k === 0, slots[(u * 2 + k) % NODES]!))
    }
  }
  const deadline = now() + 20_000
  while (consumers.some(c => !c.id) && now() < deadline) await sleep(50)
  const missing = consumers.filter(c => !c.id)
  if (missing.length > 0) throw new Error(`consumers ${missing.map(c => c.name).join(', ')} never opened`)

  // Where a consumer reconnects: any node up, as a load balancer would send it.
  const homeDraw = seededRandom(seed * 7919)
  const homing = setInterval(() => {
    for (const consumer of consumers) {
      if (consumer.client.connected) continue
      const current = slots[slotOfUrl(consumer.client.url)]
      const up = upSlots()
      if (current?.state !== 'up' && up.length > 0) consumer.client.url = urlOf(pick(up, homeDraw))
    }
  }, 100)

  const sharedRooms = Array.from({ length: SHARED }, (_, i) => `shared${i}`)
  const setupDraw = seededRandom(seed * 31)
  for (const consumer of consumers)
    for (const room of sharedRooms)
      if (setupDraw() < 0.5) await membershipOp(consumer, room, 'join', setupDraw)

  const rooms = [...new Set(consumers.map(c => `user${c.userId}`)), ...sharedRooms]
  const loops = rooms.map((room, i) =>
    publishLoop(room, room.startsWith('user') ? `u${i}` : room, seededRandom(seed * 1000 + i)),
  )

  // Faults, drawn from the seed.
  const faultDraw = seededRandom(seed)
  const background: Promise<unknown>[] = []
  const faultsUntil = now() + SECONDS * 1000
  while (now() < faultsUntil) {
    await sleep(between(1000, 3000, faultDraw))
    const dice = faultDraw()
    const canTakeANode = upSlots().length >= 2
    if (dice < 0.15 && canTakeANode) {
      const slot = pick(upSlots(), faultDraw)
      const restartAfterMs = between(0, 1500, faultDraw)
      counts.kill++
      slot.state = 'down'
      slot.interrupted.push({ generation: slot.generation, at: now(), kind: 'SIGKILL' })
      record(`SIGKILL node ${slot.index}.${slot.generation} (restart ${restartAfterMs} ms after its exit)`)
      slot.cli!.signalGroup('SIGKILL')
      background.push(
        (async () => {
          await slot.cli!.exited
          await sleep(restartAfterMs)
          await startSlot(slot)
        })(),
      )
    } else if (dice < 0.3 && canTakeANode) {
      const slot = pick(upSlots(), faultDraw)
      const forMs = between(2000, 8000, faultDraw)
      counts.stop++
      slot.state = 'stopped'
      slot.interrupted.push({ generation: slot.generation, at: now(), kind: 'SIGSTOP' })
      record(`SIGSTOP node ${slot.index}.${slot.generation} for ${forMs} ms`)
      slot.cli!.signalGroup('SIGSTOP')
      background.push(
        sleep(forMs).then(() => {
          slot.cli!.signalGroup('SIGCONT')
          slot.state = 'up'
          record(`SIGCONT node ${slot.index}.${slot.generation}`)
        }),
      )
    } else if (dice < 0.42) {
      const forMs = between(1000, 3000, faultDraw)
      const admin = pick(admins, faultDraw)
      counts.pause++
      pauses.push({ from: now(), to: now() + forMs })
      record(`CLIENT PAUSE ${forMs} on redis ${admin.options.port}`)
      await admin
        .call('CLIENT', 'PAUSE', String(forMs))
        .catch(err => record(`CLIENT PAUSE failed: ${String(err)}`))
    } else if (dice < 0.52) {
      counts.killPubsub++
      const killed = await Promise.all(
        admins.map(admin => admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub').catch(() => 0)),
      )
      record(`CLIENT KILL TYPE pubsub: ${String(killed)}`)
    } else if (dice < 0.6) {
      counts.killNormal++
      const killed = await Promise.all(
        admins.map(admin => admin.call('CLIENT', 'KILL', 'TYPE', 'normal').catch(() => 0)),
      )
      record(`CLIENT KILL TYPE normal: ${String(killed)}`)
    } else if (dice < 0.75) {
      const consumer = pick(consumers, faultDraw)
      const up = upSlots()
      if (up.length > 0) consumer.client.url = urlOf(pick(up, faultDraw))
      if (consumer.cut()) {
        counts.cut++
        record(
          `cut ${consumer.name} (${consumer.id}) on node ${consumer.slot}, back to ${slotOfUrl(consumer.client.url)}`,
        )
      }
    } else {
      const consumer = pick(consumers, faultDraw)
      const room = pick(sharedRooms, faultDraw)
      const kind = faultDraw() < 0.5 ? 'join' : 'leave'
      counts.membership++
      record(`${kind} ${consumer.name} ${room}`)
      background.push(membershipOp(consumer, room, kind, faultDraw))
    }
  }

  // Quiet: faults over, every node back, every consumer open again, the publishers stopped.
  record('faults over')
  await Promise.all(background)
  isRunning = false
  await Promise.all(loops)
  const quietUntil = now() + 30_000
  while (consumers.some(c => !c.client.connected) && now() < quietUntil) await sleep(100)
  for (const consumer of consumers)
    if (!consumer.client.connected) violation(`${consumer.name} not connected at the end`, [])

  // Every answered publish owed reaches its consumers (or 30 s pass).
  const owed = (consumer: ChaosConsumer): Publish[] =>
    [...publishes.values()].filter(p => isOwed(consumer, p) === true)
  const waitUntil = now() + 30_000
  while (now() < waitUntil) {
    const short = consumers.some(consumer => {
      const got = new Set(consumer.received.map(r => r.text))
      return owed(consumer).some(p => !got.has(p.text))
    })
    if (!short) break
    await sleep(200)
  }
  await sleep(2000) // anything sent twice comes now
  clearInterval(homing)

  // ---- the check ----
  let checked = 0
  const documented: string[] = []
  for (const consumer of consumers) {
    const got = new Map<string, Receipt[]>()
    for (const receipt of consumer.received)
      got.set(receipt.text, [...(got.get(receipt.text) ?? []), receipt])
    for (const p of publishes.values()) {
      const owes = isOwed(consumer, p)
      const receipts = got.get(p.text) ?? []
      if (owes === true) {
        checked++
        if (receipts.length === 0)
          violation(
            `${consumer.name} ${p.text}: LOST (published ${at(p.start)}-${at(p.end)} through node ${p.slot})`,
            [p.start, p.end],
            consumer,
          )
      } else if (owes === false && receipts.length > 0)
        violation(
          `${consumer.name} ${p.text}: UNEXPECTED (not a member for the whole publish ${at(p.start)}-${at(p.end)}), received ${at(receipts[0]!.at)}`,
          [p.start, receipts[0]!.at],
          consumer,
        )
    }
    for (const [text, receipts] of got) {
      if (receipts.length < 2) continue
      const first = receipts[0]!
      // The copy comes from another node (or life) that took the consumer over. A message on its way when
      // the node froze counts; a Redis pause holds the flush back.
      const crash = slots[first.slot]?.interrupted.find(
        i =>
          i.generation === first.generation &&
          i.at >= first.at - 500 &&
          i.at - first.at <= CRASH_WINDOW_MS + pausedMs(first.at, i.at) &&
          receipts[1]!.at > i.at &&
          (receipts[1]!.slot !== first.slot || receipts[1]!.generation !== first.generation),
      )
      const what = `${consumer.name} ${text}: received ${receipts.length} times (${receipts.map(r => `${at(r.at)} from node ${r.slot}.${r.generation}`).join(', ')})`
      if (crash) documented.push(`${what}, node ${first.slot} got ${crash.kind} at ${at(crash.at)}`)
      else violation(`${what}: DUPLICATE`, [first.at, receipts[receipts.length - 1]!.at], consumer)
    }
    // Order: a message answered before another was sent comes first.
    const byRoom = new Map<string, Publish[]>()
    const seen = new Set<string>()
    for (const receipt of consumer.received) {
      const p = publishes.get(receipt.text)
      if (!p || seen.has(p.text)) continue
      seen.add(p.text)
      byRoom.set(p.room, [...(byRoom.get(p.room) ?? []), p])
    }
    for (const list of byRoom.values()) {
      let latest: Publish | undefined // the received one that started last
      for (const p of list) {
        if (latest && p.status === 'ok' && latest.start > p.end)
          violation(
            `${consumer.name} ${p.text}: REORDERED, received after ${latest.text} (sent ${at(latest.start)}, after this one's answer ${at(p.end)})`,
            [p.start, latest.start],
            consumer,
          )
        if (!latest || p.start > latest.start) latest = p
      }
    }
    for (const gap of consumer.gaps) violation(`${consumer.name}: GAP notice ${gap}`, [], consumer)
  }

  for (const text of documented.slice(0, 10)) console.log('after a crash (README):', text)
  const summary = {
    seed,
    seconds: SECONDS,
    cluster: IS_CLUSTER,
    counts,
    deliveriesChecked: checked,
    received: consumers.reduce((sum, c) => sum + c.received.length, 0),
    opens: consumers.reduce((sum, c) => sum + c.opens, 0),
    duplicatesAfterCrash: documented.length,
    violations: violations.length,
  }
  console.log(JSON.stringify(summary))

  for (const consumer of consumers) {
    consumer.client.connect = () => consumer.client
    consumer.client.close()
  }
  for (const slot of slots) slot.producer?.close()
  for (const slot of slots) if (slot.state === 'up') slot.cli?.signalGroup('SIGKILL')
  for (const fn of teardowns) await fn()
  await stopRedis()
  process.exit(violations.length > 0 ? 1 : 0)
}

/**
 * Whether `consumer` must get `p` (true), must not (false), or either (undefined): only a
 * publish answered with success, while the membership the answered calls say is the same
 * from before it began until the end of the run (a leave after it drops what was not
 * delivered yet; a call whose answer never came leaves it unknown from then on).
 */
function isOwed(consumer: ChaosConsumer, p: Publish): boolean | undefined {
  if (p.status !== 'ok' || !consumer.id) return undefined
  if (p.room === `user${consumer.userId}`) return p.start > consumer.firstOpenAt ? true : undefined
  if (p.room.startsWith('user')) return false
  const list = ops.get(`${consumer.name} ${p.room}`) ?? []
  // Any call overlapping the publish, or answered late, or failed: unknown.
  if (list.some(op => op.start <= p.end && op.end >= p.start)) return undefined
  const before = list.filter(op => op.end < p.start)
  const last = before.reduce<MembershipOp | undefined>((a, op) => (!a || op.end > a.end ? op : a), undefined)
  if (before.some(op => op !== last && op.end > last!.start)) return undefined // two calls crossed
  const isIn = last?.kind === 'join'
  if (isIn && list.some(op => op.kind === 'leave' && op.start > p.end)) return undefined
  return isIn
}

const violations: string[] = []
function violation(text: string, around: number[], consumer?: ChaosConsumer): void {
  violations.push(text)
  if (violations.length > 30) return
  console.log(`VIOLATION ${text}`)
  if (around.length === 0) return
  const from = Math.min(...around) - 4000
  const to = Math.max(...around) + 2000
  for (const event of timeline)
    if (event.at >= from && event.at <= to) console.log(`    ${at(event.at)} ${event.text}`)
  if (consumer)
    for (const event of consumer.events)
      if (event.at >= from && event.at <= to)
        console.log(`    ${at(event.at)} [${consumer.name}] ${event.text}`)
}

process.on('unhandledRejection', err => {
  console.error('unhandled rejection', err)
})
main().catch(err => {
  console.error(err)
  process.exit(2)
})
