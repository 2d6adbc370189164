/**
 * The producer side of the peers: the same TCP protocol as Snapper's listener
 * (RESP bulk strings, JSON-RPC 2.0, `auth` first), reduced to what the bench
 * sends, so that every target gets byte-for-byte the same producer load.
 * `auth` is checked as Snapper checks it (the cost is once per connection);
 * `publish` pairs go to `onPublish` synchronously; replies keep request order.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { Tokens } from '../../src/auth/token.js'
import { encodeBulk, isFramingError, RespDecoder } from '../../src/producer/resp.js'

export type Pairs = readonly (readonly [string, string])[]

export interface PeerProducers {
  readonly port: number
  close(): Promise<void>
}

export async function listenProducers(
  secret: string,
  onPublish: (pairs: Pairs) => void,
): Promise<PeerProducers> {
  const tokens = new Tokens([secret])
  const sockets = new Set<Socket>()
  const server: Server = createServer(socket => {
    sockets.add(socket)
    socket.setNoDelay(true)
    const decoder = new RespDecoder(64 << 20)
    let isAuthenticated = false
    socket.on('data', chunk => {
      decoder.push(chunk)
      let out = ''
      for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
        if (isFramingError(frame)) {
          socket.destroy()
          return
        }
        const rpc = JSON.parse(frame.toString()) as { id?: string | number; method: string; params?: unknown }
        let result: unknown = null
        if (!isAuthenticated) {
          if (rpc.method !== 'auth' || !tokens.verify((rpc.params as unknown[])[0]).ok) {
            socket.destroy()
            return
          }
          isAuthenticated = true
          result = 'OK'
        } else if (rpc.method === 'publish') {
          const params = rpc.params as unknown[]
          const pairs = (Array.isArray(params[0]) ? params : [params]) as Pairs
          onPublish(pairs)
          result = pairs.length
        } else if (rpc.method === 'echo') result = rpc.params ?? null
        if (rpc.id !== undefined)
          out += encodeBulk(
            `{"jsonrpc":"2.0","id":${JSON.stringify(rpc.id)},"result":${JSON.stringify(result)}}`,
          )
      }
      if (out !== '') socket.write(out)
    })
    socket.on('error', () => socket.destroy()) // a bench producer going away mid-write: nothing to keep
    socket.on('close', () => sockets.delete(socket))
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      resolve(typeof address === 'object' && address ? address.port : 0)
    })
  })
  return {
    port,
    close() {
      for (const socket of sockets) socket.destroy()
      return new Promise(resolve => server.close(() => resolve()))
    },
  }
}
