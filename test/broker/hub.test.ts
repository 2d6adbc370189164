/**
 * The hub of a node's outboxes, in memory (test/helpers/outbox-host.ts): who
 * is held, which session delivers, nacks, ack timeouts, closing them all.
 */
import { createHook } from 'node:async_hooks'
import test from 'ava'
import { ORIGIN } from '../../src/broker/cursor.js'
import { Hub } from '../../src/broker/hub.js'
import { NodeContext } from '../../src/broker/node-context.js'
import { silentLogger } from '../../src/log.js'
import { FakeHost, FakeSink, settle } from '../helpers/outbox-host.js'
import { pause } from '../helpers/eventually.js'

/** A hub with one outbox whose batch of `messages` is in flight. */
async function hubWithBatch(
  messages: string[],
  ackTimeoutMs = 60_000,
): Promise<{
  hub: Hub<FakeSink>
  host: FakeHost
  context: NodeContext
  outbox: ReturnType<FakeHost['outbox']>
}> {
  const context = new NodeContext(silentLogger, 10)
  const hub = new Hub<FakeSink>(ackTimeoutMs, context)
  const host = new FakeHost()
  host.append('r', ...messages)
  const outbox = host.outbox()
  hub.add(outbox)
  outbox.addRoom('r', ORIGIN)
  outbox.resync('r')
  await settle()
  return { hub, host, context, outbox }
}

test('holds one outbox per consumer until it is removed', async t => {
  const { hub, host, outbox } = await hubWithBatch(['a', 'b', 'c', 'd'])
  const other = host.outbox('c2')
  hub.add(other)
  t.is(hub.size, 2)
  t.is(hub.get('c1'), outbox)
  t.is(hub.backlog(), 1, 'one message queued behind the batch in flight')
  const stale = host.outbox('c1')
  t.false(hub.holds(stale))
  t.false(hub.remove(stale), 'another outbox of the consumer is not removed in its place')
  t.true(hub.remove(outbox))
  t.false(hub.holds(outbox))
  t.false(hub.remove(outbox))
  t.deepEqual([...hub.values()], [other])
})

test('attach: the new session gets the batch in flight again, same id; not once released', async t => {
  const { hub, outbox } = await hubWithBatch(['a'])
  const first = outbox.sink!
  const second = new FakeSink()
  t.true(hub.attach(outbox, second))
  t.is(outbox.sink, second)
  t.is(second.batches[0], first.batches[0])
  hub.remove(outbox)
  t.false(hub.attach(outbox, new FakeSink()))
})

test('nack: the same messages again under a new id, a second later, unless acknowledged meanwhile', async t => {
  const nacked = await hubWithBatch(['a', 'b'])
  const acked = await hubWithBatch(['x'])
  const [batch] = nacked.outbox.sink!.batches
  t.false(nacked.hub.nack(nacked.outbox, 'not-the-id'))
  t.true(nacked.hub.nack(nacked.outbox, batch!.id))
  t.true(acked.hub.nack(acked.outbox, acked.outbox.sink!.batches[0]!.id))
  t.true(acked.outbox.sink!.ack())
  await pause(1100) // past the second a nack waits
  const again = nacked.outbox.sink!.batches[1]!
  t.not(again.id, batch!.id)
  t.deepEqual(
    again.entries.map(e => e.message),
    ['a', 'b'],
  )
  t.is(acked.outbox.sink!.batches.length, 1)
})

/** Counts the timers `run` arms (async_hooks sees every setTimeout, unref'd or not). */
function timersArmedBy(run: () => void): number {
  let armed = 0
  const hook = createHook({
    init(_id, type) {
      if (type === 'Timeout') armed++
    },
  }).enable()
  try {
    run()
  } finally {
    hook.disable()
  }
  return armed
}

test('nack: a thousand nacks of the batch in flight arm one timer and retry it once', async t => {
  const { hub, outbox } = await hubWithBatch(['a'])
  const [batch] = outbox.sink!.batches
  const armed = timersArmedBy(() => {
    for (let i = 0; i < 1000; i++) t.true(hub.nack(outbox, batch!.id))
  })
  t.is(armed, 1, 'one retry timer, however many nacks')
  await pause(1100) // past the second a nack waits
  t.is(outbox.sink!.batches.length, 2, 'sent again once')
  const again = outbox.sink!.batches[1]!
  t.is(
    timersArmedBy(() => t.true(hub.nack(outbox, again.id))),
    1,
    'the batch sent again may be nacked in its turn',
  )
})

test('nack: refused once the outbox is released (its session is going, the batch goes again where it reconnects)', async t => {
  const { hub, outbox } = await hubWithBatch(['a'])
  const [batch] = outbox.sink!.batches
  hub.remove(outbox)
  t.false(hub.nack(outbox, batch!.id))
})

test('a batch unacknowledged past the ack timeout closes its session, and is counted', async t => {
  // Long enough that the set-up on a loaded machine does not pass it before the "not yet" check.
  const { hub, host, context, outbox } = await hubWithBatch(['a'], 300)
  const idle = host.outbox('idle')
  hub.add(idle)
  hub.closeOverdue()
  t.is(outbox.sink!.closed, undefined, 'not yet')
  await pause(350) // past the 300 ms ack timeout
  hub.closeOverdue()
  t.is(outbox.sink!.closed, 'ack timeout')
  t.is(idle.sink!.closed, undefined, 'nothing in flight')
  t.is(context.counters.ackTimeouts, 1)
})

test('closeAll closes every session with the reason given', async t => {
  const { hub, host, outbox } = await hubWithBatch(['a'])
  const other = host.outbox('c2')
  hub.add(other)
  await hub.closeAll('server shutdown', 20)
  t.is(outbox.sink!.closed, 'server shutdown')
  t.is(other.sink!.closed, 'server shutdown')
})
