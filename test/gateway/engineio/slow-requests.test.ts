/**
 * Slow requests on the consumer gateway: uWS closes a connection whose HTTP
 * request has not come in full within its idle timeout (about 10 s, fixed in
 * uWebSockets.js; more data does not extend it), without an answer, so a
 * client that opens connections and trickles their requests (slowloris)
 * cannot hold them. A polling POST cut that way ends its session, as any
 * aborted POST does. A request that has come in full and is held on purpose
 * (a long poll) is not cut.
 */
import { connect, type Socket } from 'node:net'
import test from 'ava'
import { request, startEcho } from '../../helpers/engineio-harness.js'

/** A raw connection: when it closed (ms after it connected) and what it received; `trickle` is sent again and again. */
async function rawConnection(
  port: number,
  send: string,
  trickle?: string,
): Promise<{ closedAfterMs: Promise<number>; received: () => number }> {
  const socket: Socket = connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const start = Date.now()
  let received = 0
  socket.on('data', chunk => (received += chunk.length))
  socket.on('error', () => {}) // a reset counts as a close too
  if (send !== '') socket.write(send)
  // A header line every 3 s: slowloris.
  const timer = trickle === undefined ? undefined : setInterval(() => socket.write(trickle), 3000)
  const closedAfterMs = new Promise<number>(resolve =>
    socket.once('close', () => {
      clearInterval(timer)
      resolve(Date.now() - start)
    }),
  )
  return { closedAfterMs, received: () => received }
}

test('a request that does not come in full is closed unanswered within ~10 s; a held long poll is not', async t => {
  t.timeout(40_000)
  const server = await startEcho()
  t.teardown(() => server.stop())
  for (const id of ['held', 'posting'])
    t.is((await request(server.url(`EIO=4&transport=polling&token=good&id=${id}`))).status, 200)
  const held = request(server.url('EIO=4&transport=polling&sid=held'))
  let isHeldAnswered = false
  void held.then(() => (isHeldAnswered = true))

  const silent = await rawConnection(server.port, '')
  const halfHeaders = await rawConnection(
    server.port,
    'GET /websocket/?EIO=4&transport=websocket&token=good HTTP/1.1\r\nHost: x\r\n',
  )
  const halfBody = await rawConnection(
    server.port,
    'POST /websocket/?EIO=4&transport=polling&sid=posting HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n4half',
  )
  const trickling = await rawConnection(
    server.port,
    'GET /websocket/?EIO=4&transport=polling&token=good HTTP/1.1\r\nHost: x\r\n',
    'X-Padding: 1\r\n',
  )
  for (const [name, connection] of Object.entries({ silent, halfHeaders, halfBody, trickling })) {
    const ms = await connection.closedAfterMs
    t.true(ms >= 8_000 && ms <= 20_000, `${name} closed after ${ms} ms`)
    t.is(connection.received(), 0, `${name} got no answer`)
  }

  t.is(await server.closeOf('posting'), 'transport error', 'the cut POST ended its session')
  t.false(isHeldAnswered, 'the long poll of the other session is still held')
  const post = await request(server.url('EIO=4&transport=polling&sid=held'), {
    method: 'POST',
    body: '4ping',
  })
  t.is(post.status, 200)
  t.is((await held).text, '4echo:ping', 'and answered once there is something to send')
})
