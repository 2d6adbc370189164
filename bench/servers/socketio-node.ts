/**
 * The peer: Socket.IO 4 with @socket.io/redis-adapter (ioredis), websocket
 * transport only, as such a deployment is usually built. A consumer joins
 * `user<uid>` and the rooms in its handshake query; a published message is
 * `io.to(room).emit('m', message)`: one event per message, through Redis to
 * every node, with no acknowledgement and no storage (what Socket.IO does).
 */
import { createServer } from 'node:http'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { serveChild, serverOptions } from './child.js'
import { listenProducers } from './peer-producers.js'

const options = serverOptions()
const pub = new Redis(options.redisUrl)
const sub = pub.duplicate()
for (const client of [pub, sub])
  client.on('error', (err: Error) => process.stderr.write(`socket.io peer redis: ${err.message}\n`))

const http = createServer()
const io = new Server(http, {
  path: '/websocket/',
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  adapter: createAdapter(pub, sub, { key: `${options.prefix}-sio` }),
})
io.on('connection', socket => {
  const query = socket.handshake.query
  const rooms = [`user${String(query.uid)}`]
  if (typeof query.rooms === 'string' && query.rooms !== '') rooms.push(...query.rooms.split(','))
  void socket.join(rooms)
})

const producers = await listenProducers(options.secret, pairs => {
  for (const [room, message] of pairs) io.to(room).emit('m', message)
})
const gatewayPort = await new Promise<number>(resolve => {
  http.listen(0, '127.0.0.1', () => {
    const address = http.address()
    resolve(typeof address === 'object' && address ? address.port : 0)
  })
})

serveChild({ gatewayPort, producerPort: producers.port }, async () => {
  await producers.close()
  await new Promise<void>(resolve => io.close(() => resolve()))
  pub.disconnect()
  sub.disconnect()
})
