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
