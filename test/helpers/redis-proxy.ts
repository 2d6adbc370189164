import { once } from 'node:events'
import { createServer, connect, type Socket } from 'node:net'

/** A TCP proxy in front of a Redis, for failures Redis itself would not show. */
export interface RedisProxy {
  readonly url: string
  /** An outage: cuts every connection, and every new one at once, until up(). Redis is untouched. */
  down(): void
  up(): void
  /**
   * The next request that contains `marker` reaches Redis; at the next bytes
   * Redis sends back on that connection (Redis has run it), every connection
   * is cut and those bytes are lost.
   */
  loseReplyTo(marker: string): void
  /** Times loseReplyTo cut the connections. */
  readonly cuts: number
  close(): void
}

export async function startRedisProxy(redisPort: number): Promise<RedisProxy> {
  const sockets = new Set<Socket>()
  let isDown = false
  let marker: string | undefined
  let cuts = 0
  const track = (socket: Socket): Socket => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    return socket
  }
  const cutAll = (): void => {
    for (const socket of sockets) socket.destroy()
  }
  const server = createServer(client => {
    track(client)
    if (isDown) return void client.destroy()
    const upstream = track(connect(redisPort, '127.0.0.1'))
    let losing = false
    client.on('data', (chunk: Buffer) => {
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined
        losing = true
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!losing) return void client.write(chunk)
      cuts++
      cutAll()
    })
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return {
    url: `redis://127.0.0.1:${port}`,
    down() {
      isDown = true
      cutAll()
    },
    up: () => void (isDown = false),
    loseReplyTo: text => void (marker = text),
    get cuts() {
      return cuts
    },
    close() {
      server.close()
      cutAll()
    },
  }
}
