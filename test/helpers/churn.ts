/**
 * Churn against one node, and what the node holds once its clients are gone
 * (test/stress/churn-soak.ts, test/e2e/churn-leaks.test.ts; README,
 * Development). Every client a node meets comes and goes: snapper-consumer and
 * engine.io-client sessions (websocket and polling) that join rooms, receive,
 * ack and close; raw websockets destroyed mid-session; polling sessions left
 * to time out; reconnect loops of one token (refused past
 * maxHandshakesPerUserPerSec); bad tokens; handshakes from 127.0.0.x;
 * producers that publish and close, or are cut, or never authenticate; admin
 * requests good and bad. Every choice comes from the seed (not the timing).
 */
import { request as httpRequest } from 'node:http'
import { connect as tcpConnect } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Producer from 'snapper-producer'
import { WebSocket } from 'ws'
import type { Redis } from 'ioredis'
import { defaults, type Config } from '../../src/config/defaults.js'
import { startNode, type RunningNode } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { call, newUserId, TEST_SECRET } from './broker.js'
import { CLIENT_KINDS, connectConsumer } from './consumers.js'
import { pause, within } from './eventually.js'
import { uniquePrefix } from './redis.js'
import { seededRandom } from './seeded-random.js'

/**
 * Short timeouts, so that what a gone client leaves behind times out within
 * seconds: pings, upgrades, acks, producer auth, admin requests.
 */
export function churnConfig(redisUrl: string): Config {
  return {
    ...defaults,
    redis: { kind: 'standalone', url: redisUrl },
    redisPrefix: uniquePrefix(),
    tokenSecrets: [TEST_SECRET],
    drainSpreadMs: 0,
    pingIntervalMs: 500,
    pingTimeoutMs: 500,
    upgradeTimeoutMs: 500,
    ackTimeoutMs: 1000,
    takeoverWaitMs: 200,
    cursorFlushMs: 100,
    statsFlushMs: 200,
    producerAuthTimeoutMs: 500,
    adminRequestTimeoutMs: 1000,
    consumerRetryAfterMs: 100,
    maxHandshakesPerUserPerSec: 4,
    maxHandshakesPerAddressPerSec: 200,
    maxUnauthenticatedProducersPerAddress: 4,
    adminMaxConnectionsPerAddress: 6,
  }
}

/** The longest a gone client's traces may live with churnConfig: the longest timeout, twice, plus a margin. */
export const SETTLE_MS = 6000

export async function startChurnNode(config: Config): Promise<RunningNode> {
  return startNode(config, silentLogger, { gateway: 0, producer: 0, admin: 0 })
}

/** What the churn did, by kind of client (and how many of each were refused or failed, which is fine). */
export type ChurnCounts = Record<string, number>

const ROOMS = ['churn-a', 'churn-b', 'churn-c', 'churn-d']
/** Loopback addresses handshakes come from, so per-address structures see several keys. */
const ADDRESSES = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']
/** How long one client may take before it is given up (and destroyed): the churn must not hang. */
const CLIENT_LIMIT_MS = 5000

/** Runs `workers` seeded workers against `running` for `seconds`; resolves once every client is closed. */
export async function churn(
  running: RunningNode,
  seed: number,
  seconds: number,
  workers = 6,
): Promise<ChurnCounts> {
  const counts: ChurnCounts = {}
  const count = (what: string): void => {
    counts[what] = (counts[what] ?? 0) + 1
  }
  const { ports, tokens } = running
  const producerToken = tokens.sign({ name: 'churn' })
  const operatorToken = tokens.signOperator()
  const deadline = Date.now() + seconds * 1000
  // A few users, reused: per-user structures see each key come back many times.
  const users = Array.from({ length: 12 }, () => newUserId())

  const producer = new Producer(ports.producer!, { secretKeys: [TEST_SECRET], producerId: 'churn' })
  producer.on('error', () => count('producer error'))
  await within(new Promise(resolve => producer.once('connect', resolve)), 10_000, 'the churn producer')

  const steps: [number, (draw: () => number) => Promise<void>][] = [
    [4, draw => sdkConsumer(draw)],
    [2, draw => rawWebsocket(draw)],
    [2, draw => abandonedPolling(draw)],
    [1, draw => reconnectLoop(draw)],
    [1, draw => badHandshake(draw)],
    [2, draw => shortProducer(draw)],
    [1, draw => strangerProducer(draw)],
    [2, draw => adminRequest(draw)],
  ]
  const total = steps.reduce((sum, [weight]) => sum + weight, 0)
  const pick = <T>(items: readonly T[], draw: () => number): T => items[Math.floor(draw() * items.length)]!

  const userToken = (draw: () => number): string => tokens.sign({ userId: pick(users, draw) })

  /** snapper-consumer or engine.io-client: open, join a room, get a message, ack it, leave or not, close. */
  const sdkConsumer = async (draw: () => number): Promise<void> => {
    const kind = pick(CLIENT_KINDS, draw)
    // snapper-consumer schedules a reconnect on every close, even ours (11-60 s by default, a timer of
    // the client's that would outlive the churn): a short one, which close() has made a no-op.
    const consumer = connectConsumer(kind, ports.gateway, userToken(draw), {
      ...(kind.startsWith('v3') && { reconnectMs: 20 }),
    })
    try {
      const id = await within(consumer.opened(), CLIENT_LIMIT_MS, `${kind} open`)
      const room = pick(ROOMS, draw)
      await call(producer.joinRoom(room, id) as never)
      const text = `m${Math.floor(draw() * 1e9)}`
      await call(producer.request('publish', [[room, text]]) as never)
      await consumer.waitFor(1, CLIENT_LIMIT_MS)
      if (draw() < 0.5) await call(producer.leaveRoom(room, id) as never)
      count(`consumer ${kind}`)
    } catch {
      count(`consumer ${kind} failed`) // refused (per-user rate), or slow on a loaded machine: both are churn
    } finally {
      consumer.close()
    }
  }

  /** A raw Engine.IO 4 websocket from 127.0.0.x, closed cleanly or destroyed (no close frame, no FIN). */
  const rawWebsocket = async (draw: () => number): Promise<void> => {
    const from = pick(ADDRESSES, draw)
    const socket = new WebSocket(
      `ws://127.0.0.1:${ports.gateway}/websocket/?EIO=4&transport=websocket&token=${userToken(draw)}`,
      { localAddress: from },
    )
    socket.on('error', () => count('websocket error'))
    socket.on('message', data => {
      const text = String(data)
      if (text === '2') socket.send('3')
      else if (text.startsWith('4')) {
        const frame = JSON.parse(text.slice(1)) as { id?: string; method?: string }
        if (frame.method === 'publish')
          socket.send(`4${JSON.stringify({ jsonrpc: '2.0', id: frame.id, result: 'OK' })}`)
      }
    })
    const opened = await within(
      new Promise<boolean>(resolve => {
        socket.once('message', data => resolve(String(data).startsWith('0')))
        socket.once('close', () => resolve(false))
      }),
      CLIENT_LIMIT_MS,
      'a raw websocket open',
    ).catch(() => false)
    await pause(Math.floor(draw() * 300))
    if (draw() < 0.5) {
      socket.close()
      count(opened ? 'websocket closed' : 'websocket refused')
    } else {
      socket.terminate()
      count(opened ? 'websocket destroyed' : 'websocket refused')
    }
  }

  /** A polling handshake (maybe one poll) and then nothing: the session must time out. */
  const abandonedPolling = async (draw: () => number): Promise<void> => {
    const from = pick(ADDRESSES, draw)
    const answer = await get(
      ports.gateway,
      `/websocket/?EIO=4&transport=polling&token=${userToken(draw)}`,
      from,
    )
    const sid = /"sid":"([^"]+)"/.exec(answer.body)?.[1]
    if (sid && draw() < 0.5)
      await get(ports.gateway, `/websocket/?EIO=4&transport=polling&sid=${sid}`, from, true)
    count(sid ? 'polling abandoned' : `polling refused ${answer.status}`)
  }

  /** One token handshaking again and again: past maxHandshakesPerUserPerSec it is refused with 429. */
  const reconnectLoop = async (draw: () => number): Promise<void> => {
    const token = userToken(draw)
    for (let i = 0; i < 8; i++) {
      const answer = await get(
        ports.gateway,
        `/websocket/?EIO=4&transport=polling&token=${token}`,
        pick(ADDRESSES, draw),
      )
      count(`reconnect ${answer.status}`)
    }
  }

  const badHandshake = async (draw: () => number): Promise<void> => {
    const token = draw() < 0.5 ? 'not-a-token' : `${userToken(draw).slice(0, -4)}AAAA`
    const answer = await get(
      ports.gateway,
      `/websocket/?EIO=4&transport=polling&token=${token}`,
      pick(ADDRESSES, draw),
    )
    count(`bad token ${answer.status}`)
  }

  /** snapper-producer: connect, publish, then close or be cut. */
  const shortProducer = async (draw: () => number): Promise<void> => {
    const short = new Producer(ports.producer!, {
      secretKeys: [TEST_SECRET],
      producerId: `p${Math.floor(draw() * 4)}`,
    })
    short.on('error', () => {})
    try {
      await within(
        new Promise(resolve => short.once('connect', resolve)),
        CLIENT_LIMIT_MS,
        'a producer connect',
      )
      await call(short.request('publish', [[pick(ROOMS, draw), 'from a short producer']]) as never)
      count('producer published')
    } catch {
      count('producer failed')
    } finally {
      short.close()
    }
  }

  /** A TCP connection to the producer port that never authenticates: silent, garbage, or cut at once. */
  const strangerProducer = async (draw: () => number): Promise<void> => {
    const socket = tcpConnect({
      port: ports.producer!,
      host: '127.0.0.1',
      localAddress: pick(ADDRESSES, draw),
    })
    socket.on('error', () => {})
    await new Promise(resolve => {
      socket.once('connect', resolve)
      socket.once('close', resolve)
    })
    const dice = draw()
    if (dice < 0.3) socket.write('*1\r\n$5\r\nhello\r\n')
    else if (dice < 0.6) socket.write('garbage\r\n\r\n')
    if (dice < 0.8) await pause(Math.floor(draw() * 800)) // some outlive producerAuthTimeoutMs
    socket.destroy()
    count('producer stranger')
  }

  const adminRequest = async (draw: () => number): Promise<void> => {
    const base = `http://127.0.0.1:${ports.admin!}`
    const dice = draw()
    const auth = { authorization: `Bearer ${producerToken}`, 'content-type': 'application/json' }
    const asked =
      dice < 0.3
        ? fetch(`${base}/v1/publish`, {
            method: 'POST',
            headers: auth,
            body: JSON.stringify({ room: pick(ROOMS, draw), message: 'over http' }),
          })
        : dice < 0.45
          ? fetch(`${base}/v1/publish`, { method: 'POST', headers: auth, body: '{"room": ' })
          : dice < 0.55
            ? fetch(`${base}/v1/publish`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: '{}',
              })
            : dice < 0.75
              ? fetch(`${base}/metrics?token=${operatorToken}`)
              : fetch(`${base}/readyz`)
    try {
      const response = await within(asked, CLIENT_LIMIT_MS, 'an admin answer')
      await response.arrayBuffer()
      count(`admin ${response.status}`)
    } catch {
      count('admin failed')
    }
  }

  const worker = async (index: number): Promise<void> => {
    const draw = seededRandom(seed * 1000 + index)
    while (Date.now() < deadline) {
      let dice = draw() * total
      const step = steps.find(([weight]) => (dice -= weight) < 0)![1]
      await step(draw)
    }
  }
  await Promise.all(Array.from({ length: workers }, (_, index) => worker(index)))
  producer.close()
  return counts
}

/**
 * One HTTP GET from `localAddress`, on a connection of its own closed after
 * the answer (no keep-alive agent holding sockets past the churn). `abort`:
 * give up after 200 ms (a long poll nobody waits for).
 */
function get(
  port: number,
  path: string,
  localAddress: string,
  abort = false,
): Promise<{ status: number; body: string }> {
  return new Promise(resolve => {
    const req = httpRequest({ host: '127.0.0.1', port, path, localAddress, agent: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', () => resolve({ status: 0, body }))
    })
    req.on('error', () => resolve({ status: 0, body: '' }))
    req.setTimeout(abort ? 200 : CLIENT_LIMIT_MS, () => req.destroy())
    req.end()
  })
}

/** What the node holds per client, by structure (each 0, or its start-up value, once its clients are gone). */
export function footprint(running: RunningNode): Record<string, number> {
  const { gateway, node, producer, core } = running
  return {
    ...gateway.footprint(),
    ...node.footprint(),
    // What /metrics shows as snapper_backlog_messages and snapper_publish_pending_bytes.
    queuedMessages: node.backlog(),
    publishPendingBytes: core.producerApi.backlog.bytes,
    ...producer.footprint(),
    ...(running.adminFootprint?.() ?? {}),
  }
}

/** Handles and requests keeping the event loop alive, by type (process.getActiveResourcesInfo). */
export function activeResources(): Record<string, number> {
  const byType: Record<string, number> = {}
  for (const type of process.getActiveResourcesInfo()) byType[type] = (byType[type] ?? 0) + 1
  return byType
}

/** global.gc, in a process started with or without --expose-gc. */
const collectGarbage = (() => {
  if (typeof globalThis.gc === 'function') return globalThis.gc
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
})()

/** Heap used after full collections, in bytes. */
export async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collectGarbage()
    await new Promise(resolve => setImmediate(resolve))
  }
  return process.memoryUsage().heapUsed
}

/** The node's Redis keys (its prefix), and those without a TTL by name. */
export async function redisKeys(
  client: Redis,
  prefix: string,
): Promise<{ total: number; withoutTtl: string[] }> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    keys.push(...batch)
  } while (cursor !== '0')
  const ttls = await Promise.all(keys.map(key => client.pttl(key)))
  return { total: keys.length, withoutTtl: keys.filter((_, i) => ttls[i] === -1).sort() }
}

/** What a leak check reads of a node and its process. */
export interface Reading {
  /** footprint(): every one is per client, so 0 with no client. */
  readonly structures: Record<string, number>
  /** activeResources() */
  readonly handles: Record<string, number>
  readonly heapBytes: number
  readonly keys: { readonly total: number; readonly withoutTtl: string[] }
}

export async function readNode(running: RunningNode, client: Redis, prefix: string): Promise<Reading> {
  return {
    structures: footprint(running),
    handles: activeResources(),
    heapBytes: await heapAfterGc(),
    keys: await redisKeys(client, prefix),
  }
}

/**
 * What `after` (no client left) holds that it should not: a structure not
 * empty, more handles of a type than `before`, a key without a TTL that
 * `before` did not have, a heap grown by more than `maxHeapGrowthBytes`.
 */
export function leaksBetween(before: Reading, after: Reading, maxHeapGrowthBytes: number): string[] {
  const leaks: string[] = []
  for (const [name, size] of Object.entries(after.structures)) if (size > 0) leaks.push(`${name}: ${size}`)
  for (const [type, count] of Object.entries(after.handles))
    if (count > (before.handles[type] ?? 0))
      leaks.push(`handles ${type}: ${before.handles[type] ?? 0} → ${count}`)
  for (const key of after.keys.withoutTtl)
    if (!before.keys.withoutTtl.includes(key)) leaks.push(`key without a TTL: ${key}`)
  const growth = after.heapBytes - before.heapBytes
  if (growth > maxHeapGrowthBytes)
    leaks.push(`heap grew ${mb(growth)} MB (bound ${mb(maxHeapGrowthBytes)} MB)`)
  return leaks
}

export const mb = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10
