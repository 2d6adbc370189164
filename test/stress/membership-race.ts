/**
 * `node dist/test/stress/membership-race.js [seed] [operations]`
 *
 * A seeded stress of room membership across nodes: 3 nodes on one real Redis,
 * snapper-producer connections on each, raw Engine.IO 4 websocket consumers
 * that reconnect to random nodes (closing first, or not: a takeover), joins,
 * leaves and publishes interleaved by several workers, and node restarts.
 * The seed fixes each worker's choices (not the timing, nor which node a
 * consumer lands on). USERS (4, two consumers each), ROOMS (6) and WORKERS
 * (6) in the environment set the contention; TRACES=n prints the event
 * trace of the first n consumers with a violation. Not run by `npm test`:
 * a tool for hunting races. After quiescence it checks:
 * each message reached exactly the consumers the answered calls say (a join
 * answered before the publish began: received; a leave answered before it
 * began: not), per room in order and once; the consumers' rooms in Redis and
 * on the nodes; presence counts; rooms a node follows without members.
 */
import { WebSocket } from 'ws'
import Producer from 'snapper-producer'
import { defaults, type Config } from '../../src/config/defaults.js'
import { startNode, type RunningNode } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { askRoomMembers } from '../../src/broker/room-members.js'
import { userRoom } from '../../src/redis/keys.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'
import { call, TEST_SECRET } from '../helpers/broker.js'
import { seededRandom } from '../helpers/seeded-random.js'

const seed = Number(process.argv[2] ?? 1)
const OPERATIONS = Number(process.argv[3] ?? 600)
const WORKERS = Number(process.env.WORKERS ?? 6)
const USERS = Number(process.env.USERS ?? 4)
const CONSUMERS_PER_USER = 2
const ROOMS = Number(process.env.ROOMS ?? 6)

// Each worker draws from its own generator, so its choices do not depend on timing.
const random = seededRandom(seed)
const pick = <T>(items: readonly T[], draw = random): T => items[Math.floor(draw() * items.length)]!
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const now = (): number => performance.now()

interface Slot {
  running: RunningNode | undefined
  producers: Producer[]
  busy: number
  draining: boolean
  generation: number
}

interface Op {
  readonly kind: 'join' | 'leave'
  readonly start: number
  end: number
  result?: unknown
}

interface Publish {
  readonly room: string
  readonly text: string
  readonly start: number
  end: number
}

const violations: string[] = []
const violation = (text: string): void => {
  violations.push(text)
  if (violations.length <= 40) console.log('VIOLATION', text)
}

class Consumer {
  readonly received: { room: string; text: string; at: number }[] = []
  readonly trace: string[] = []
  socket: WebSocket | undefined
  opening = false
  lastBatchId: string | undefined
  sessions = 0
  online = false
  constructor(
    readonly userId: string,
    readonly token: string,
    public id = '',
  ) {}

  log(text: string): void {
    this.trace.push(`${Math.round(now())} ${text}`)
  }

  open(port: number): Promise<void> {
    const socket = new WebSocket(
      `ws://127.0.0.1:${port}/websocket/?EIO=4&transport=websocket&token=${this.token}`,
    )
    const n = ++socketCount
    this.log(`socket ${n} to ${port}`)
    this.socket = socket
    this.online = false
    return new Promise(resolve => {
      // A node stopping mid-handshake may never answer: give up on that socket.
      const timer = setTimeout(() => socket.terminate(), 5000)
      const done = (): void => {
        clearTimeout(timer)
        resolve()
      }
      socket.on('message', data => {
        const text = String(data)
        if (text.startsWith('0')) {
          this.id = (JSON.parse(text.slice(1)) as { sid: string }).sid
          if (this.socket === socket) this.online = true
          this.sessions++
          this.log(`socket ${n} open`)
          done()
        } else if (text === '2') socket.send('3')
        else if (text.startsWith('4')) this.#frame(socket, n, JSON.parse(text.slice(1)) as Frame)
      })
      socket.on('close', (code, reason) => {
        this.log(`socket ${n} closed ${code} ${String(reason)}`)
        if (this.socket === socket) this.online = false
        done()
      })
      socket.on('error', done)
    })
  }

  #frame(socket: WebSocket, n: number, frame: Frame): void {
    if (frame.method !== 'publish' || !frame.id) return
    this.log(
      `socket ${n} batch ${frame.id} ${(frame.params ?? []).join(' ')}${frame.id === this.lastBatchId ? ' (repeat)' : ''}`,
    )
    if (frame.id !== this.lastBatchId) {
      this.lastBatchId = frame.id
      for (const text of frame.params ?? [])
        this.received.push({ room: text.slice(0, text.indexOf('#')), text, at: now() })
    }
    const ack = (): void => {
      if (socket.readyState === WebSocket.OPEN)
        socket.send(`4${JSON.stringify({ jsonrpc: '2.0', id: frame.id, result: 'OK' })}`)
    }
    // A deterministic but varied delay: some acks are slow, so batches are in flight at moves.
    if (frame.id.charCodeAt(frame.id.length - 1) % 3 === 0) setTimeout(ack, 30)
    else ack()
  }
}
let socketCount = 0
type Frame = { id?: string; method?: string; params?: string[] }

async function main(): Promise<void> {
  const redis = await startRedis()
  const prefix = uniquePrefix()
  const config: Config = {
    ...defaults,
    redis: { kind: 'standalone', url: redis.url },
    redisPrefix: prefix,
    tokenSecrets: [TEST_SECRET],
    drainSpreadMs: 0,
    nodeTtlMs: 3000,
  }
  const slots: Slot[] = [0, 1, 2].map(() => ({
    running: undefined,
    producers: [],
    busy: 0,
    draining: false,
    generation: 0,
  }))
  const startSlot = async (slot: Slot): Promise<void> => {
    slot.running = await startNode(config, silentLogger, { gateway: 0, producer: 0 })
    slot.generation++
    slot.producers = await Promise.all(
      [0, 1].map(
        i =>
          new Promise<Producer>(resolve => {
            const producer = new Producer(slot.running!.ports.producer, {
              secretKeys: [TEST_SECRET],
              producerId: `p${i}`,
            })
            producer.on('error', () => {})
            producer.once('connect', () => resolve(producer))
          }),
      ),
    )
    slot.draining = false
  }
  for (const slot of slots) await startSlot(slot)
  const liveSlots = (): Slot[] => slots.filter(slot => slot.running && !slot.draining)

  const tokens = slots[0]!.running!.tokens
  const consumers: Consumer[] = []
  for (let u = 0; u < USERS; u++) {
    const userId = `5${String(seed).padStart(5, '0')}${String(u).padStart(2, '0')}`.padEnd(24, 'a')
    for (let k = 0; k < CONSUMERS_PER_USER; k++)
      consumers.push(new Consumer(userId, tokens.sign({ userId }, 86_400 + k)))
  }
  const rooms = Array.from({ length: ROOMS }, (_, i) => `room${i}`)
  const ops = new Map<string, Op[]>() // `${consumerId} ${room}`
  const publishes: Publish[] = []
  const roomLocks = new Map<string, Promise<void>>()
  let published = 0
  const counts = { join: 0, leave: 0, publish: 0, reconnect: 0, takeover: 0, restart: 0, errors: 0 }

  // Reconnect whatever closes (the node closed it: drain, kick), like snapper-consumer does.
  const keepOnline = async (consumer: Consumer): Promise<void> => {
    if (consumer.opening) return consumer.log('already opening')
    consumer.opening = true
    try {
      const slot = pick(liveSlots())
      await consumer.open(slot.running!.ports.gateway)
    } catch (err) {
      consumer.log(`open failed: ${String(err)}`)
    } finally {
      consumer.opening = false
    }
  }
  for (const consumer of consumers) while (!consumer.online) await keepOnline(consumer)
  const watcher = setInterval(() => {
    for (const consumer of consumers)
      if (
        !consumer.opening &&
        (!consumer.socket ||
          consumer.socket.readyState === WebSocket.CLOSED ||
          consumer.socket.readyState === WebSocket.CLOSING)
      ) {
        consumer.socket = undefined
        void keepOnline(consumer)
      }
  }, 50)

  const withProducer = async <T>(use: (producer: Producer) => Promise<T>): Promise<T> => {
    const slot = pick(liveSlots())
    const producer = pick(slot.producers)
    slot.busy++
    try {
      return await use(producer)
    } finally {
      slot.busy--
    }
  }
  /** One publish request of these messages, through any live node. */
  const publishAll = (batch: readonly Publish[]): Promise<unknown> =>
    withProducer(producer =>
      call(
        producer.request(
          'publish',
          batch.map(p => [p.room, p.text]),
        ) as never,
      ),
    )

  let restarting = false
  const operation = async (random: () => number): Promise<void> => {
    const dice = random()
    const consumer = pick(consumers, random)
    const room = pick(rooms, random)
    if (dice < 0.25 || dice < 0.45) {
      const kind = dice < 0.25 ? 'join' : 'leave'
      const key = `${consumer.id} ${room}`
      const op: Op = { kind, start: now(), end: Infinity }
      const list = ops.get(key) ?? []
      ops.set(key, list)
      list.push(op)
      counts[kind]++
      consumer.log(`${kind} ${room} called`)
      try {
        op.result = await withProducer(producer =>
          call(
            kind === 'join' ? producer.joinRoom(room, consumer.id) : producer.leaveRoom(room, consumer.id),
          ),
        )
        op.end = now()
        consumer.log(`${kind} ${room} answered ${String(op.result)}`)
      } catch (err) {
        counts.errors++
        console.log('op failed', kind, String(err))
      }
    } else if (dice < 0.8) {
      counts.publish++
      const previous = roomLocks.get(room) ?? Promise.resolve()
      const mine = previous.then(async () => {
        const count = 1 + Math.floor(random() * 3)
        const batch: Publish[] = []
        for (let i = 0; i < count; i++)
          batch.push({ room, text: `${room}#${++published}`, start: now(), end: Infinity })
        try {
          await publishAll(batch)
          const end = now()
          for (const p of batch) p.end = end
          for (const c of consumers)
            c.log(`published ${batch.map(p => p.text).join(' ')} (${Math.round(batch[0]!.start)})`)
        } catch (err) {
          counts.errors++
          console.log('publish failed', String(err))
        }
        publishes.push(...batch)
      })
      roomLocks.set(room, mine)
      await mine
    } else if (dice < 0.88) {
      counts.reconnect++
      consumer.socket?.close()
      consumer.socket = undefined
      await keepOnline(consumer)
    } else if (dice < 0.97) {
      counts.takeover++
      // A new socket (anywhere) while the old one is still open: the node holding it is told to let go.
      const old = consumer.socket
      consumer.socket = undefined
      await keepOnline(consumer)
      setTimeout(() => old?.close(), 200)
    } else if (!restarting) {
      restarting = true
      counts.restart++
      const slot = pick(slots.slice(1), random)
      slot.draining = true
      while (slot.busy > 0) await sleep(5)
      for (const producer of slot.producers) producer.close()
      for (const c of consumers) c.log(`stopping node ${slot.running!.ports.gateway}`)
      await slot.running!.stop()
      for (const c of consumers) c.log(`stopped node`)
      slot.running = undefined
      await sleep(Math.floor(random() * 300))
      await startSlot(slot)
      restarting = false
    }
  }

  const worker = async (index: number): Promise<void> => {
    const draw = seededRandom(seed * 1000 + index)
    for (let done = 0; done < OPERATIONS / WORKERS; done++) {
      await operation(draw)
      await sleep(Math.floor(draw() * 15))
    }
  }
  const began = now()
  await Promise.all(Array.from({ length: WORKERS }, (_, index) => worker(index)))
  console.log(`ops done in ${Math.round(now() - began)} ms`, counts)

  // Quiescence: every consumer online, nothing in flight.
  await sleep(1500)
  for (const consumer of consumers) {
    const deadline = now() + 10_000
    while (!consumer.online && now() < deadline) await sleep(20)
    if (!consumer.online) violation(`consumer ${consumer.id} not online at the end`)
  }
  await sleep(1500)

  // Final markers: one message to every room; who gets it is who is in it now.
  const markerStart = now()
  const markers: Publish[] = rooms.map(room => ({ room, text: `${room}#final`, start: markerStart, end: 0 }))
  await publishAll(markers)
  const markerEnd = now()
  for (const marker of markers) marker.end = markerEnd
  publishes.push(...markers)
  await sleep(3000)
  clearInterval(watcher)

  const client = redis.client()
  let checked = 0
  for (const consumer of consumers) {
    const running = liveSlots()[0]!.running!
    const key = running.core.keys.consumer(consumer.id)
    const [holder, redisRooms] = await Promise.all([client.get(key.node), client.hgetall(key.rooms)])
    const holderSlot = slots.find(slot => slot.running?.node.id === holder)
    if (!holderSlot) violation(`${consumer.id}: node key ${holder} names no live node`)

    for (const room of rooms) {
      const list = ops.get(`${consumer.id} ${room}`) ?? []
      // What the answered calls say the consumer is in at `at`: undefined when calls overlap it.
      const stateAt = (at: number): boolean | undefined => {
        if (list.some(op => op.start <= at && op.end >= at)) return undefined
        const before = list.filter(op => op.end < at)
        const last = before.reduce<Op | undefined>((a, op) => (!a || op.end > a.end ? op : a), undefined)
        if (!last) return false
        if (before.some(op => op !== last && op.end > last.start)) return undefined // concurrent calls
        return last.kind === 'join'
      }
      const finalState = stateAt(now())
      const inRedis = room in redisRooms
      if (finalState !== undefined && finalState !== inRedis)
        violation(
          `${consumer.id} ${room}: answered calls say ${finalState ? 'in' : 'out'}, Redis says ${inRedis}`,
        )

      const got = consumer.received.filter(r => r.room === room).map(r => r.text)
      const seen = new Map<string, number>()
      for (const text of got) seen.set(text, (seen.get(text) ?? 0) + 1)
      for (const [text, times] of seen)
        if (times > 1) violation(`${consumer.id}: ${text} received ${times} times`)
      // Order: the publishes of a room are serialized, so their numbers grow.
      const numbers = got.map(text => (text.endsWith('#final') ? Infinity : Number(text.split('#')[1])))
      for (let i = 1; i < numbers.length; i++)
        if (numbers[i]! <= numbers[i - 1]!) violation(`${consumer.id} ${room}: ${got[i]} after ${got[i - 1]}`)

      for (const p of publishes.filter(p => p.room === room)) {
        checked++
        const inAtStart = stateAt(p.start)
        const inAtEnd = stateAt(p.end)
        const received = seen.has(p.text)
        const isFinal = p.text.endsWith('#final')
        if (isFinal) {
          if (received !== inRedis)
            violation(
              `${consumer.id} ${room}: final marker ${received ? 'received' : 'not received'}, Redis says member=${inRedis}, calls say ${finalState}`,
            )
          continue
        }
        // A leave drops what was not delivered yet: owed only if the consumer stayed in a while after.
        const stays = !list.some(op => op.kind === 'leave' && op.start >= p.end && op.start < p.end + 1000)
        if (inAtStart === true && inAtEnd === true && stays && !received && p.end !== Infinity)
          violation(`${consumer.id} ${p.text}: joined (answered) before the publish, never received`)
        if (inAtStart === false && inAtEnd === false && received)
          violation(`${consumer.id} ${p.text}: left (answered) before the publish, received`)
      }
    }
  }

  // Presence: every consumer online, counted once.
  const api = liveSlots()[0]!.running!.core.producerApi
  for (let u = 0; u < USERS; u++) {
    const userId = consumers[u * CONSUMERS_PER_USER]!.userId
    const counted = await api.consumers(userId)
    if (counted.length !== CONSUMERS_PER_USER)
      violation(`presence of ${userId}: ${counted.length}, ${CONSUMERS_PER_USER} online`)
  }

  // Rooms on the nodes: each room's members on the nodes are its members in Redis, and no node follows
  // a room without members.
  const core = liveSlots()[0]!.running!.core
  const allRooms = [...rooms, ...new Set(consumers.map(c => userRoom(c.userId)))]
  for (const room of allRooms) {
    const members = await askRoomMembers(core.redis.commands, core.redis.pubsub, core.keys, room, {
      liveNodes: liveSlots().length,
      timeoutMs: 2000,
    })
    const expected: string[] = []
    for (const consumer of consumers) {
      const has = await client.hexists(core.keys.consumer(consumer.id).rooms, room)
      if (has) expected.push(consumer.id)
    }
    const listed = members.consumers.map(m => m.consumerId).sort()
    if (members.count !== expected.length || listed.join() !== expected.sort().join())
      violation(`room ${room}: nodes hold [${listed.join(', ')}], Redis says [${expected.join(', ')}]`)
  }
  let nodeRooms = 0
  for (const slot of liveSlots()) nodeRooms += slot.running!.node.roomCount
  const followed = new Set<string>()
  for (const consumer of consumers)
    for (const room of Object.keys(await client.hgetall(core.keys.consumer(consumer.id).rooms)))
      followed.add(`${(await client.get(core.keys.consumer(consumer.id).node)) ?? ''} ${room}`)
  if (nodeRooms !== followed.size)
    violation(`nodes follow ${nodeRooms} rooms, their members need ${followed.size}`)

  const traced = new Set<string>()
  for (const text of violations) {
    const id = text.split(/[ :]/)[0]!
    const consumer = consumers.find(c => c.id === id)
    if (!consumer || traced.has(id) || traced.size >= Number(process.env.TRACES ?? 0)) continue
    traced.add(id)
    console.log(`--- trace of ${id}\n${consumer.trace.join('\n')}`)
  }
  console.log(
    JSON.stringify({
      seed,
      operations: OPERATIONS,
      counts,
      publishes: publishes.length,
      deliveriesChecked: checked,
      sessions: consumers.reduce((sum, c) => sum + c.sessions, 0),
      violations: violations.length,
    }),
  )
  for (const consumer of consumers) consumer.socket?.close()
  for (const slot of slots) {
    for (const producer of slot.producers) producer.close()
    await slot.running?.stop()
  }
  await redis.stop()
  process.exit(violations.length > 0 ? 1 : 0)
}

main().catch(err => {
  console.error(err)
  process.exit(2)
})
