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
 *
 * The `scripts` target (`BENCH_TARGET=scripts`) is the same server doing
 * the Redis work of Snapper's guarantees with Snapper's own scripts, and
 * nothing else of Snapper's: a producer frame's messages are appended by
 * room_append-4n.lua (seq numbers, exactly-once call numbers, trims by
 * length, bytes and age, expiry; its msgpack announcement decoded as
 * Snapper decodes it), and acks move cursors, written every cursorFlushMs by
 * progress_write-1n.lua as Snapper's cursor flush writes them. Its rate
 * bounds what Snapper could reach with its Redis design and JavaScript that
 * cost no more than the floor's (docs/performance.md, section 4).
 */
import { Redis } from 'ioredis'
import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js'
import { Tokens } from '../../src/auth/token.js'
import { decodeAnnouncement } from '../../src/broker/control.js'
import { defaults as DEFAULTS } from '../../src/config/defaults.js'
import { loadUws } from '../../src/gateway/engineio/uws.js'
import { Keys } from '../../src/redis/keys.js'
import { scriptRequests } from '../../src/redis/scripts.js'
import { serveChild, serverOptions } from './child.js'
import { listenProducers } from './peer-producers.js'
import { groupByRoom, listenUws } from './uws-listen.js'

interface SocketData {
  readonly rooms: readonly string[]
  readonly sid: string
  isClosed: boolean
  /** `scripts`: the acknowledged cursor of each room not flushed yet. */
  readonly cursors: Map<string, string>
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
const usesScripts = process.env.BENCH_TARGET === 'scripts'
const tokens = new Tokens([options.secret])
const uws = loadUws() // throws on the JavaScript fallback
const app = uws.App()
const redis = new Redis(options.redisUrl, { enableAutoPipelining: true }) // one write per turn: the cheapest I/O
const subscriber = new Redis(options.redisUrl)
const snapperKeys = new Keys(options.prefix)
const channelPrefix = `${options.prefix}:floor:announce:`
const logPrefix = `${options.prefix}:floor:log:`
let sessions = 0
let batches = 0

redis.defineCommand('floorAppend', { lua: APPEND })
const floorAppend = (args: (string | number)[]): Promise<unknown> =>
  (redis as unknown as { floorAppend(...args: (string | number)[]): Promise<unknown> }).floorAppend(...args)

/** Rooms by their announcement channel (`scripts`: Snapper's channel names). */
const roomOfChannel = new Map<string, string>()
const channelOf = (room: string): string =>
  usesScripts ? snapperKeys.room(room).channel : channelPrefix + room

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
  const channel = channelOf(room)
  turn.channels.push(channel)
  roomOfChannel.set(channel, room)
  subscribed.set(room, turn.done)
  return turn.done
}

if (!usesScripts)
  subscriber.on('message', (channel: string, params: string) => {
    app.publish(
      channel.slice(channelPrefix.length),
      `4{"jsonrpc":"2.0","id":"f:${++batches}","method":"publish","params":${params}}`,
      false,
    )
  })
else
  // Snapper's announcement (msgpack: ms, first seq, messages); the batch id names the room and its last
  // message's cursor, which the ack brings back.
  subscriber.on('messageBuffer', (channel: Buffer, bytes: Buffer) => {
    const room = roomOfChannel.get(channel.toString())
    const announcement = room === undefined ? undefined : decodeAnnouncement(bytes)
    if (!announcement) return
    const { ms, first, messages } = announcement
    const id = JSON.stringify(`${room}|${ms}-${first + messages.length - 1}`)
    app.publish(
      room!,
      `4{"jsonrpc":"2.0","id":${id},"method":"publish","params":${JSON.stringify(messages)}}`,
      false,
    )
  })

const CONNECT_SCRIPT = scriptRequests('consumer_connect-5.lua')
const APPEND_SCRIPT = scriptRequests('room_append-4n.lua')
const PROGRESS_SCRIPT = scriptRequests('progress_write-1n.lua')
/** `scripts`: this process as a node (the consumers' holder) and as the appends' writer. */
const writer = `floor${options.index}`
let calls = 0

/** `scripts`: the sockets with cursors acknowledged since the last flush. */
const acknowledged = new Set<SocketData>()
const ACK_ID = /"id":"([^"|]+)\|([\d-]+)"/

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
      { rooms, sid: `f${options.index}.${++sessions}`, isClosed: false, cursors: new Map() },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    )
  },
  open(ws) {
    const data = ws.getUserData()
    // `scripts`: the handshake's Redis work is Snapper's (take the session, read rooms and cursors, presence).
    const stored = usesScripts
      ? takeWithScripts(data)
      : redis.set(`${options.prefix}:floor:consumer:${data.sid}`, options.index, 'EX', CONSUMER_TTL_SEC)
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
  message(ws, bytes) {
    if (!usesScripts) return // acks: dropped (no cursor to move)
    const ack = ACK_ID.exec(Buffer.from(bytes).toString())
    if (!ack) return
    const data = ws.getUserData()
    data.cursors.set(ack[1]!, ack[2]!)
    acknowledged.add(data)
  },
  close(ws) {
    ws.getUserData().isClosed = true
  },
})

/** `scripts`: a handshake's take, as Snapper's (consumer_connect-5.lua); the own room is the first. */
function takeWithScripts(data: SocketData): Promise<unknown> {
  const ownRoom = data.rooms[0]!
  const consumer = snapperKeys.consumer(data.sid)
  return CONNECT_SCRIPT.call(
    redis,
    [
      consumer.rooms,
      consumer.node,
      consumer.inflight,
      snapperKeys.presence(ownRoom.slice('user'.length)),
      snapperKeys.room(ownRoom).head,
    ],
    [writer, DEFAULTS.consumerTtlSec, data.sid, ownRoom, ''],
  )
}

/**
 * `scripts`: a producer frame's messages, by room, in calls of at most 256 messages (as RoomLog's; Snapper
 * makes one call of all the frames read in a turn of the event loop, the floors one per frame).
 */
function appendWithScripts(byRoom: Map<string, string[]>): void {
  const rooms = [...byRoom]
  for (let start = 0; start < rooms.length;) {
    let end = start
    let count = 0
    while (end < rooms.length && (end === start || count + rooms[end]![1].length <= 256))
      count += rooms[end++]![1].length
    const call = rooms.slice(start, end)
    const request = APPEND_SCRIPT.start(
      4 * call.length,
      6 + call.reduce((n, [, messages]) => n + 3 + messages.length, 0),
    )
    for (const [room] of call) {
      const { log, head, channel } = snapperKeys.room(room)
      request.key(log).key(head).key(channel).key(snapperKeys.track(room, ''))
    }
    request
      .arg(DEFAULTS.roomLogMaxLen)
      .arg(DEFAULTS.roomLogMaxBytes)
      .arg(DEFAULTS.messageTtlSec)
      .arg('PUBLISH')
      .arg(writer)
      .arg(++calls)
    for (const [, messages] of call) {
      request.arg(0).arg('').arg(messages.length)
      for (const message of messages) request.arg(message)
    }
    APPEND_SCRIPT.send(redis, request.end()).catch(() => {})
    start = end
  }
}

/** `scripts`: the cursors acknowledged since the last flush, into the rooms' progress hashes (as ConsumerStore's flush). */
function flushCursors(): void {
  const byRoom = new Map<string, string[]>()
  for (const data of acknowledged) {
    for (const [room, cursor] of data.cursors) {
      const fields = byRoom.get(room)
      if (fields) fields.push(data.sid, cursor)
      else byRoom.set(room, [data.sid, cursor])
    }
    data.cursors.clear()
  }
  acknowledged.clear()
  const rooms = [...byRoom.keys()]
  for (let start = 0; start < rooms.length; start += 1000) {
    const chunk = rooms.slice(start, start + 1000)
    const request = PROGRESS_SCRIPT.start(
      chunk.length,
      1 + chunk.reduce((n, room) => n + 1 + byRoom.get(room)!.length, 0),
    )
    for (const room of chunk) request.key(snapperKeys.room(room).progress)
    request.arg(DEFAULTS.consumerTtlSec)
    for (const room of chunk) {
      const fields = byRoom.get(room)!
      request.arg(fields.length / 2)
      for (const field of fields) request.arg(field)
    }
    PROGRESS_SCRIPT.send(redis, request.end()).catch(() => {})
  }
}
const flushTimer = usesScripts ? setInterval(flushCursors, DEFAULTS.cursorFlushMs) : undefined

const producers = await listenProducers(options.secret, pairs => {
  if (usesScripts) return appendWithScripts(groupByRoom(pairs))
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
  clearInterval(flushTimer)
  gateway.close()
  redis.disconnect()
  subscriber.disconnect()
})
