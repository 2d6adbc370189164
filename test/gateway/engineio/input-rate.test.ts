/**
 * maxInputBytesPerSec: what one session may send (websocket messages, POST
 * bodies), on average per second, with one maxPayloadBytes at once. Without
 * it, one consumer token kept a node's core busy (127,000 small echo
 * requests a second, or 24 one-megabyte messages a second, each parsed
 * whole). Past it the session is closed before its input is decoded.
 */
import test, { type ExecutionContext } from 'ava'
import type { EngineOptions } from '../../../src/gateway/engineio/server.js'
import { pause } from '../../helpers/eventually.js'
import { openSocket, request, startEcho, type EchoServer } from '../../helpers/engineio-harness.js'

async function echo(t: ExecutionContext, options: Partial<EngineOptions>): Promise<EchoServer> {
  const server = await startEcho(options)
  t.teardown(() => server.stop())
  return server
}

const LIMITS = { maxPayloadBytes: 4000, maxInputBytesPerSec: 2000 }

test('a websocket sending past maxInputBytesPerSec is closed before its message is handled; a steady one is not', async t => {
  const server = await echo(t, LIMITS)
  const flood = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=flood', 'ws'))
  const steady = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=steady', 'ws'))
  t.teardown(() => [flood.ws.terminate(), steady.ws.terminate()])
  await Promise.all([flood.next(), steady.next()]) // the open packets

  const big = `4${'x'.repeat(1499)}` // 1,500 bytes: two fit in the 4,000 a session may send at once, three do not
  for (let i = 0; i < 3; i++) flood.ws.send(big)
  t.is(await server.closeOf('flood'), 'too much input')
  t.is(await flood.closed, 1008)
  t.is(server.received.filter(data => data === big.slice(1)).length, 2, 'the third message was never handled')

  // 100 bytes every 100 ms (1,000 bytes a second) stays within 2,000 a second, however long it goes on.
  const small = `4${'y'.repeat(99)}`
  for (let i = 0; i < 60; i++) {
    steady.ws.send(small)
    await pause(100)
  }
  t.true(server.engine.sessions.has('steady'))
  t.is(server.received.filter(data => data === small.slice(1)).length, 60)
  t.is(server.engine.inputLimited, 1)
})

test('a polling POST past maxInputBytesPerSec gets 429 and its session is closed', async t => {
  const server = await echo(t, LIMITS)
  const open = await request(server.url('EIO=4&transport=polling&token=good&id=poller'))
  t.is(open.status, 200)
  const post = () =>
    request(server.url('EIO=4&transport=polling&token=good&sid=poller'), {
      method: 'POST',
      body: `4${'z'.repeat(2999)}`,
    })
  t.is((await post()).status, 200)
  const refused = await post()
  t.is(refused.status, 429)
  t.is(await server.closeOf('poller'), 'too much input')
  t.is(server.received.length, 1)
})

test('a client that reconnects gets no fresh budget: what it sends before and after its open packet counts against the one its id left', async t => {
  // 400 bytes a second: an emptied budget takes 10 s to fill up again, far longer than a reconnect.
  const server = await echo(t, { maxPayloadBytes: 4000, maxInputBytesPerSec: 400 })
  const message = `4${'x'.repeat(1899)}` // 1,900 bytes: two fit in the 4,000 a budget holds at once, three do not
  const session = async (extra: string): Promise<number> => {
    const socket = await openSocket(server.url(`EIO=4&transport=websocket&token=good&id=loop${extra}`, 'ws'))
    t.teardown(() => socket.ws.terminate())
    socket.ws.send(message) // before the open packet when the session prepares (`delay`): counted once it opens
    await socket.next() // the open packet
    await socket.next() // the echo
    socket.ws.close()
    return socket.closed
  }
  t.is(await session('&delay=50'), 1005)
  t.is(await session(''), 1005) // 3,800 bytes in all, within the 4,000
  await server.closeOf('loop')
  await server.closeOf('loop')

  // The third session's message, sent before its open packet, passes the budget: closed unread.
  const third = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=loop&delay=50', 'ws'))
  t.teardown(() => third.ws.terminate())
  third.ws.send(message)
  t.is(await third.closed, 1008)
  t.is(await server.closeOf('loop'), 'too much input')
  t.is(
    server.received.filter(data => data === message.slice(1)).length,
    2,
    'the third message was never handled',
  )

  // Another id has a budget of its own.
  const other = await openSocket(server.url('EIO=4&transport=websocket&token=good&id=other', 'ws'))
  t.teardown(() => other.ws.terminate())
  await other.next()
  other.ws.send(message)
  t.is(await other.next(), `4echo:${'x'.repeat(1899)}`)
})

// A packet costs the node far more than its bytes: a v3 client sending one-byte pings as fast as its
// socket took them had 170,000 a second answered (half a core) within 256 KiB a second. Each packet
// counts inputBytesPerPacket beside its bytes (README, Limits and bad input).
test('one-byte packets count inputBytesPerPacket each: a flood of pings, pongs or noops is closed long before its bytes would be', async t => {
  const server = await echo(t, { ...LIMITS, inputBytesPerPacket: 64 })
  for (const [eio, packet] of [
    [3, '2'],
    [4, '3'],
    [4, '6'],
  ] as const) {
    const id = `tiny${eio}${packet}`
    const socket = await openSocket(server.url(`EIO=${eio}&transport=websocket&token=good&id=${id}`, 'ws'))
    t.teardown(() => socket.ws.terminate())
    await socket.next() // the open packet
    // 1,000 bytes, a quarter of what may come at once; 65 bytes a packet: the 62nd is past the 4,000.
    for (let i = 0; i < 1000; i++) socket.ws.send(packet)
    t.is(await socket.closed, 1008, `${eio} ${packet}`)
    t.is(await server.closeOf(id), 'too much input')
  }

  // A POST's packets count too, once decoded and before they are handled: 100 v3 pings, 300 bytes.
  const open = await request(server.url('EIO=3&transport=polling&token=good&id=poller'))
  t.is(open.status, 200)
  const post = await request(server.url('EIO=3&transport=polling&token=good&sid=poller'), {
    method: 'POST',
    body: '1:2'.repeat(100),
  })
  t.is(post.status, 429)
  t.is(await server.closeOf('poller'), 'too much input')
})
