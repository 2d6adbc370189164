/**
 * The ceiling: a bare uWebSockets.js server (native binary, checked) that
 * fans out in memory, with no Redis, no storage and no waiting for acks.
 * It speaks just enough of the same wire for the same consumers: the
 * Engine.IO open packet on a direct websocket, then delivery frames shaped
 * like Snapper's (`4{"jsonrpc":"2.0","id":…,"method":"publish","params":[…]}`,
 * at most 50 messages, one per room per producer frame), sent once per room
 * with uWS pub/sub (encode once, C++ fan-out). Acks arrive and are dropped.
 */
import type { HttpRequest, HttpResponse, us_socket_context_t } from 'uWebSockets.js'
import { loadUws } from '../../src/gateway/engineio/uws.js'
import { serveChild, serverOptions } from './child.js'
import { listenProducers } from './peer-producers.js'
import { groupByRoom, listenUws } from './uws-listen.js'

interface SocketData {
  readonly rooms: string[]
  readonly sid: string
}

const BATCH_MAX = 50
const options = serverOptions()
const uws = loadUws() // throws on the JavaScript fallback: never the ceiling
const app = uws.App()
let sessions = 0
let batches = 0

app.ws<SocketData>('/websocket/*', {
  maxPayloadLength: 1 << 20,
  // Big enough that no consumer is ever skipped (a skipped publish would count as loss).
  maxBackpressure: 64 << 20,
  idleTimeout: 0,
  sendPingsAutomatically: false,
  upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t) {
    const query = new URLSearchParams(req.getQuery())
    const rooms = [`user${query.get('uid') ?? ''}`, ...(query.get('rooms') ?? '').split(',').filter(Boolean)]
    res.upgrade<SocketData>(
      { rooms, sid: `u${++sessions}` },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    )
  },
  open(ws) {
    const { rooms, sid } = ws.getUserData()
    ws.send(`0{"sid":"${sid}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)
    for (const room of rooms) ws.subscribe(room)
  },
  message() {
    // Acks: the ceiling does not wait for them.
  },
})

const producers = await listenProducers(options.secret, pairs => {
  for (const [room, messages] of groupByRoom(pairs)) {
    for (let start = 0; start < messages.length; start += BATCH_MAX) {
      const params = JSON.stringify(messages.slice(start, start + BATCH_MAX))
      app.publish(
        room,
        `4{"jsonrpc":"2.0","id":"u:${++batches}","method":"publish","params":${params}}`,
        false,
      )
    }
  }
})

const gateway = await listenUws(uws, app, 'uWS ceiling')
serveChild({ gatewayPort: gateway.port, producerPort: producers.port }, async () => {
  await producers.close()
  gateway.close()
})
