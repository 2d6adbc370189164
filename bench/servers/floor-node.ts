/**
 * The floor: the least any broker must do that keeps its messages in Redis
 * and runs as many processes: bare uWS (native binary, checked) with
 * Snapper's token check and the two Redis trips such a broker cannot skip.
 *
 * - A handshake: the token is verified (synchronously, before the upgrade),
 *   the consumer is written to Redis (one SET with an expiry: where it is),
 *   the process subscribes to its rooms' channels (those new to it, one
 *   SUBSCRIBE per turn), and the open packet goes once both are done.
 * - A producer frame: one script call stores every message (XADD, trimmed
 *   to about 1,000 entries) and announces each room's part on its channel
 *   (PUBLISH); the process holding the room's consumers sends what it hears
 *   with uWS pub/sub, as the ceiling does.
 *
 * What it leaves out, and Snapper does: sequence numbers and exactly once
 * (the head hash, the writer's call numbers), trimming by bytes and age,
 * expiry of logs, acks and cursors (acks arrive and are dropped), catch-up
 * reads, batching per consumer, presence, limits. So its rate is an upper
 * bound for Snapper's on the same machine: what no amount of work on
 * Snapper's own code could pass while it stores and routes through Redis.
 */
import { Redis } from 'ioredis'
import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js'
import { Tokens } from '../../src/auth/token.js'
import { loadUws } from '../../src/gateway/engineio/uws.js'
import { serveChild, serverOptions } from './child.js'
import { listenProducers } from './peer-producers.js'
import { groupByRoom, listenUws } from './uws-listen.js'

interface SocketData {
  readonly rooms: readonly string[]
  readonly sid: string
  isClosed: boolean
}

const BATCH_MAX = 50
const LOG_MAX = 1000
const CONSUMER_TTL_SEC = 3600

/** KEYS: per room its log and channel; ARGV: per room its message count, the messages, the announcement. */
const APPEND = `
local at = 1
for k = 1, #KEYS, 2 do
  local count = tonumber(ARGV[at])
  for i = at + 1, at + count do
    redis.call('XADD', KEYS[k], 'MAXLEN', '~', ${LOG_MAX}, '*', 'm', ARGV[i])
  end
  redis.call('PUBLISH', KEYS[k + 1], ARGV[at + count + 1])
  at = at + count + 2
end`

const options = serverOptions()
const tokens = new Tokens([options.secret])
const uws = loadUws() // throws on the JavaScript fallback
const app = uws.App()
const redis = new Redis(options.redisUrl, { enableAutoPipelining: true }) // one write per turn: the cheapest I/O
const subscriber = new Redis(options.redisUrl)
const channelPrefix = `${options.prefix}:floor:announce:`
const logPrefix = `${options.prefix}:floor:log:`
let sessions = 0
let batches = 0

redis.defineCommand('floorAppend', { lua: APPEND })
const floorAppend = (args: (string | number)[]): Promise<unknown> =>
  (redis as unknown as { floorAppend(...args: (string | number)[]): Promise<unknown> }).floorAppend(...args)

/** Rooms this process is subscribed to, and this turn's SUBSCRIBE (one for every room new in it). */
const subscribed = new Map<string, Promise<unknown>>()
let turn: { readonly channels: string[]; readonly done: Promise<unknown> } | undefined

function subscribe(room: string): Promise<unknown> {
  const known = subscribed.get(room)
  if (known) return known
  if (!turn) {
    const channels: string[] = []
    const done = Promise.resolve().then(() => {
      turn = undefined
      return subscriber.subscribe(...channels)
    })
    turn = { channels, done }
  }
  turn.channels.push(channelPrefix + room)
  subscribed.set(room, turn.done)
  return turn.done
}

subscriber.on('message', (channel: string, params: string) => {
  app.publish(
    channel.slice(channelPrefix.length),
    `4{"jsonrpc":"2.0","id":"f:${++batches}","method":"publish","params":${params}}`,
    false,
  )
})

app.ws<SocketData>('/websocket/*', {
  maxPayloadLength: 1 << 20,
  maxBackpressure: 64 << 20, // as the ceiling: no consumer is ever skipped
  idleTimeout: 0,
  sendPingsAutomatically: false,
  upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t) {
    const query = new URLSearchParams(req.getQuery())
    const verified = tokens.verifyConsumer(query.get('token'))
    if (!verified.ok) {
      res.writeStatus('401 Unauthorized').end()
      return
    }
    const rooms = [`user${verified.claims.userId}`, ...(query.get('rooms') ?? '').split(',').filter(Boolean)]
    res.upgrade<SocketData>(
      { rooms, sid: `f${options.index}.${++sessions}`, isClosed: false },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    )
  },
  open(ws) {
    const data = ws.getUserData()
    const stored = redis.set(
      `${options.prefix}:floor:consumer:${data.sid}`,
      options.index,
      'EX',
      CONSUMER_TTL_SEC,
    )
    Promise.all([stored, ...data.rooms.map(subscribe)]).then(
      () => {
        if (data.isClosed) return
        ws.send(
          `0{"sid":"${data.sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`,
        )
        for (const room of data.rooms) ws.subscribe(room)
      },
      () => {
        if (!data.isClosed) ws.end(1011)
      },
    )
  },
  message() {
    // Acks: dropped (no cursor to move).
  },
  close(ws) {
    ws.getUserData().isClosed = true
  },
})

const producers = await listenProducers(options.secret, pairs => {
  const keys: string[] = []
  const args: (string | number)[] = []
  for (const [room, messages] of groupByRoom(pairs)) {
    for (let start = 0; start < messages.length; start += BATCH_MAX) {
      const part = messages.slice(start, start + BATCH_MAX)
      keys.push(logPrefix + room, channelPrefix + room)
      args.push(part.length, ...part, JSON.stringify(part))
    }
  }
  // The bench's producers wait for no reply of ours but the RPC's: a failed call is a lost message, counted as such.
  floorAppend([keys.length, ...keys, ...args]).catch(() => {})
})

const gateway = await listenUws(uws, app, 'floor')
serveChild({ gatewayPort: gateway.port, producerPort: producers.port }, async () => {
  await producers.close()
  gateway.close()
  redis.disconnect()
  subscriber.disconnect()
})
