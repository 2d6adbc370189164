import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import test, { type ExecutionContext } from 'ava'
import { Socket as Socket6 } from 'engine.io-client'
import { type EchoServer, startEcho } from '../../helpers/engineio-harness.js'
import { eventually, eventWithin, holdsFor } from '../../helpers/eventually.js'

// engine.io-client 3.5.6 exactly as snapper-consumer@1.3.6 bundles it.
const consumerRequire = createRequire(createRequire(import.meta.url).resolve('snapper-consumer'))
const eio3 = consumerRequire('engine.io-client') as (uri: string, options: object) => ClientSocket
const eio3Version = (consumerRequire('engine.io-client/package.json') as { version: string }).version

/** What both clients share: an emitter with open/message/upgrading/upgrade/close. */
interface ClientSocket extends EventEmitter {
  send(data: string | Buffer): void
  close(): void
  readonly transport: { readonly name: string }
}

type Version = 3 | 6
type Transports = 'default' | 'websocket' | 'polling'

async function echo(t: ExecutionContext): Promise<EchoServer> {
  const server = await startEcho()
  t.teardown(() => server.stop())
  return server
}

function connect(
  t: ExecutionContext,
  version: Version,
  server: EchoServer,
  id: string,
  transports: Transports,
  extraQuery: Readonly<Record<string, string>> = {},
): ClientSocket {
  const options = {
    path: '/websocket',
    ...(transports === 'default' ? {} : { transports: [transports] }),
  }
  const uri = `http://127.0.0.1:${server.port}`
  const socket =
    version === 3
      ? eio3(uri, { ...options, query: new URLSearchParams({ token: 'good', id, ...extraQuery }).toString() })
      : (new Socket6(uri, {
          ...options,
          query: { token: 'good', id, ...extraQuery },
        }) as unknown as ClientSocket)
  t.teardown(() => socket.close())
  return socket
}

function inbox(socket: ClientSocket): string[] {
  const messages: string[] = []
  socket.on('message', (data: unknown) => messages.push(String(data)))
  return messages
}

test('the bundled v3 client is 3.5.6', t => {
  t.is(eio3Version, '3.5.6')
})

for (const version of [3, 6] as const) {
  const name = `engine.io-client ${version === 3 ? '3.5.6 (EIO=3)' : '6 (EIO=4)'}`

  test(`${name}: polling then upgrade; messages before, during and after it keep their order both ways`, async t => {
    const server = await echo(t)
    const socket = connect(t, version, server, `order${version}`, 'default')
    const received = inbox(socket)
    const sent: string[] = []
    const send = (text: string): void => {
      sent.push(text)
      socket.send(text)
    }
    let phase = 'before'
    socket.on('open', () => {
      t.is(socket.transport.name, 'polling')
      for (let i = 0; i < 5; i++) send(`before-${i}`)
    })
    socket.on('upgrading', () => {
      phase = 'during'
      for (let i = 0; i < 5; i++) send(`during-${i}`)
    })
    const upgraded = eventWithin(socket, 'upgrade')
    socket.on('upgrade', () => {
      phase = 'after'
      for (let i = 0; i < 5; i++) send(`after-${i}`)
    })
    // The server streams ticks from open until well after the switch.
    const session = await server.openOf(`order${version}`)
    const ticksVia = { polling: 0, websocket: 0 }
    const tick = (): void => {
      session.send(`tick-${ticksVia.polling + ticksVia.websocket}`)
      ticksVia[session.transport]++
    }
    tick() // the session polls until the client's probe succeeds: at least this one goes that way
    const ticker = setInterval(tick, 3)
    t.teardown(() => clearInterval(ticker))
    await upgraded
    t.is(phase, 'after')
    t.is(socket.transport.name, 'websocket')
    await eventually(() => received.filter(m => m.startsWith('echo:')).length === 15, { timeoutMs: 5000 })
    await eventually(() => ticksVia.websocket >= 5, { timeoutMs: 5000 })
    clearInterval(ticker)
    const ticks = ticksVia.polling + ticksVia.websocket
    await eventually(() => received.filter(m => m.startsWith('tick-')).length === ticks, { timeoutMs: 5000 })

    t.deepEqual(server.received, sent, 'client → server in order')
    t.deepEqual(
      received.filter(m => m.startsWith('echo:')),
      sent.map(text => `echo:${text}`),
    )
    const tickNumbers = received.filter(m => m.startsWith('tick-')).map(m => Number(m.slice(5)))
    t.deepEqual(tickNumbers, [...tickNumbers.keys()], 'server → client in order, none lost across the switch')
    t.true(ticksVia.polling >= 1 && ticksVia.websocket >= 5, JSON.stringify(ticksVia))
    t.is(session.transport, 'websocket')
  })

  for (const transports of ['websocket', 'polling'] as const) {
    test(`${name}, ${transports} only: non-ASCII and 100 KB messages round-trip`, async t => {
      const server = await echo(t)
      const socket = connect(t, version, server, `rt${version}${transports}`, transports)
      const received = inbox(socket)
      await eventWithin(socket, 'open')
      t.is(socket.transport.name, transports)
      const texts = ['€', '😀', 'a\u2028b\u2029c', `big:${'€😀x'.repeat(25_000)}`, 'plain']
      for (const text of texts) socket.send(text)
      await eventually(() => received.length === texts.length, { timeoutMs: 5000 })
      t.deepEqual(
        received,
        texts.map(text => `echo:${text}`),
      )
      t.is(server.engine.sessions.get(`rt${version}${transports}`)?.transport, transports)
    })
  }

  test(`${name}, websocket only: what the app sends before the open packet is handled after it, in order`, async t => {
    const server = await echo(t)
    // delay: the 101 comes at once, the open packet 300 ms later (the node taking the consumer over)
    const socket = connect(t, version, server, `early${version}`, 'websocket', { delay: '300' })
    const received = inbox(socket)
    socket.send('queued') // before the 101: the client holds it
    // From the 101 on, the client writes whatever the app sends, open packet or not.
    const transport = socket.transport as unknown as EventEmitter
    transport.once('open', () => socket.send('after the 101'))
    socket.on('open', () => socket.send('after open'))
    await eventually(() => received.includes('echo:after open'), { timeoutMs: 5000 })
    t.deepEqual(server.received, ['queued', 'after the 101', 'after open'])
    t.deepEqual(received, ['echo:queued', 'echo:after the 101', 'echo:after open'])
  })

  test(`${name}: the server closes; the client sees it`, async t => {
    const server = await echo(t)
    for (const transports of ['websocket', 'polling'] as const) {
      const id = `sc${version}${transports}`
      const socket = connect(t, version, server, id, transports)
      await eventWithin(socket, 'open')
      const closed = eventWithin(socket, 'close')
      ;(await server.openOf(id)).close()
      const [reason] = (await closed) as [string]
      t.is(reason, 'transport close', transports)
      t.is(await server.closeOf(id), 'forced close')
    }
    await eventually(() => server.engine.lingering === 0)
    t.is(server.engine.sessions.size, 0)
  })

  test(`${name}: the client closes; the server's close() runs once`, async t => {
    const server = await echo(t)
    for (const transports of ['default', 'websocket', 'polling'] as const) {
      const id = `cc${version}${transports}`
      const socket = connect(t, version, server, id, transports)
      await eventWithin(socket, 'open')
      if (transports === 'default') await eventWithin(socket, 'upgrade')
      socket.close()
      t.is(await server.closeOf(id), 'transport close', transports)
    }
    await holdsFor(() => server.closed.length === 3, 100, 'no second close')
    t.deepEqual(
      server.closed.map(closed => closed.id),
      [`cc${version}default`, `cc${version}websocket`, `cc${version}polling`],
      'once each',
    )
    t.is(server.engine.sessions.size, 0)
    t.is(server.engine.lingering, 0)
  })

  test(`${name}: a second connection with the same id replaces the first, which sees a close`, async t => {
    const server = await echo(t)
    const first = connect(t, version, server, 'same', 'websocket')
    await eventWithin(first, 'open')
    const firstClosed = eventWithin(first, 'close')
    const second = connect(t, version, server, 'same', 'websocket')
    const received = inbox(second)
    await eventWithin(second, 'open')
    await firstClosed
    t.deepEqual(server.opened, [
      { id: 'same', replaced: false },
      { id: 'same', replaced: true },
    ])
    t.deepEqual(server.closed, [], 'no close() for the replaced session')
    second.send('hi')
    await eventually(() => received.length === 1)
    t.deepEqual(received, ['echo:hi'])
  })
}
