/**
 * What uWebSockets.js reads of a request head (docs/consumer-protocol.md §1):
 * a head of up to 4 KiB always, a longer one only when it arrives in one read
 * (on a real network it comes in segments of about 1.4 KB, often read apart);
 * otherwise it closes the connection without an answer, before the engine
 * sees anything. So maxQueryBytes is bounded at start so that every query it
 * admits, with a browser's headers, fits in those 4 KiB.
 */
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import test from 'ava'
import { defaults } from '../../../src/config/defaults.js'
import { startEcho } from '../../helpers/engineio-harness.js'

/** About what a browser sends besides the request line (no cookies of the page's own). */
const BROWSER_HEADERS = [
  'Host: gateway.example.com',
  `User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36`,
  'Accept: */*',
  'Accept-Language: en-US,en;q=0.9,de;q=0.8',
  'Accept-Encoding: gzip, deflate, br',
  'Origin: https://app.example.com',
  `Referer: https://app.example.com/projects/${'a'.repeat(24)}/tasks/${'b'.repeat(24)}?view=board`,
  'Sec-Fetch-Dest: empty',
  'Sec-Fetch-Mode: cors',
  'Sec-Fetch-Site: same-site',
  'Cache-Control: no-cache',
  'Pragma: no-cache',
  `Cookie: session=${'c'.repeat(300)}`,
]

const UPGRADE_HEADERS = [
  'Connection: Upgrade',
  'Upgrade: websocket',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
]

/** A query of exactly `bytes` bytes that the echo server accepts as a handshake. */
function queryOf(transport: 'polling' | 'websocket', bytes: number): string {
  const start = `EIO=4&transport=${transport}&token=good&pad=`
  return start + 'x'.repeat(bytes - start.length)
}

/**
 * Sends a request head the way a network delivers it: in segments of 1448
 * bytes (an Ethernet MSS) read apart; resolves with the status line, or
 * `closed unanswered`.
 */
async function sendInSegments(port: number, head: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  let received = ''
  const answered = new Promise<string>(resolve => {
    socket.on('data', chunk => {
      received += String(chunk)
      if (received.includes('\r\n')) resolve(received.split('\r\n')[0]!)
    })
    socket.on('error', () => {}) // a reset is an unanswered close too
    socket.on('close', () => resolve('closed unanswered'))
  })
  await new Promise(resolve => socket.once('connect', resolve))
  for (let at = 0; at < head.length; at += 1448) {
    socket.write(head.slice(at, at + 1448))
    await sleep(20)
  }
  const statusLine = await answered
  socket.destroy() // a 101 or a keep-alive 200 would hold the connection open
  return statusLine
}

function head(query: string, headers: readonly string[]): string {
  return `GET /websocket/?${query} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`
}

test('every query maxQueryBytes admits is served with a browser’s headers, even when its request arrives in segments', async t => {
  const server = await startEcho()
  t.teardown(() => server.stop())
  const polling = head(queryOf('polling', defaults.maxQueryBytes), BROWSER_HEADERS)
  const upgrade = head(queryOf('websocket', defaults.maxQueryBytes), [...BROWSER_HEADERS, ...UPGRADE_HEADERS])
  t.true(polling.length > 1448, 'more than one segment')
  t.is(await sendInSegments(server.port, polling), 'HTTP/1.1 200 OK', `a ${polling.length}-byte head`)
  t.is(
    await sendInSegments(server.port, upgrade),
    'HTTP/1.1 101 Switching Protocols',
    `a ${upgrade.length}-byte head`,
  )
})

test('a query past maxQueryBytes in a head within 4 KiB gets its 400, even in segments', async t => {
  const server = await startEcho()
  t.teardown(() => server.stop())
  const polling = head(queryOf('polling', defaults.maxQueryBytes + 1), ['Host: gateway.example.com'])
  t.true(polling.length <= 4096)
  t.is(await sendInSegments(server.port, polling), 'HTTP/1.1 400 Bad Request')
})
