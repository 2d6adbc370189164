import { createServer } from 'node:net'

const handedOut = new Set<number>()

/**
 * A TCP port that is free on 127.0.0.1 now, never the same twice in this
 * process. For servers that need their port before they start (redis-server,
 * nginx); our own listeners take port 0 instead.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => {
        const address = server.address()
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
      })
    })
    // Redis Cluster also uses port + 10000 for its bus.
    if (!handedOut.has(port) && port + 10000 < 65536) {
      handedOut.add(port)
      return port
    }
  }
}
