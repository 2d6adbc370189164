/**
 * What the bench's two uWS servers (the ceiling and the floor) share: their
 * gateway's listen socket on a free loopback port, and the producer pairs of
 * one frame grouped by room.
 */
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js'
import type { loadUws } from '../../src/gateway/engineio/uws.js'
import type { Pairs } from './peer-producers.js'

/** Listens on a free port of 127.0.0.1; `close` stops listening (open sockets stay, the process exits next). */
export async function listenUws(
  uws: ReturnType<typeof loadUws>,
  app: TemplatedApp,
  name: string,
): Promise<{ port: number; close(): void }> {
  let listenSocket: us_listen_socket | undefined
  const port = await new Promise<number>((resolve, reject) => {
    app.listen('127.0.0.1', 0, socket => {
      if (!socket) return reject(new Error(`${name} cannot listen`))
      listenSocket = socket
      resolve(uws.us_socket_local_port(socket as never))
    })
  })
  return {
    port,
    close() {
      if (listenSocket) uws.us_listen_socket_close(listenSocket)
    },
  }
}

/** A frame's messages by room, each room's in order. */
export function groupByRoom(pairs: Pairs): Map<string, string[]> {
  const byRoom = new Map<string, string[]>()
  for (const [room, message] of pairs) {
    const messages = byRoom.get(room)
    if (messages) messages.push(message)
    else byRoom.set(room, [message])
  }
  return byRoom
}
