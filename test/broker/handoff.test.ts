/**
 * Handoff.onKick: a node asked to release a consumer it has released
 * already, with that release still on its way to Redis (a close, the drain:
 * the outbox has left the hub), says `released` only once it is committed,
 * since the node taking the consumer over reads its cursors and batch in
 * flight as soon as `released` comes. Handoff.takeOver: a consumer's wait for
 * `released` ends when it comes, also for a takeover that replaced another.
 */
import test from 'ava'
import { Handoff } from '../../src/broker/handoff.js'
import type { ControlMessage } from '../../src/broker/control.js'
import type { BrokerCore } from '../../src/broker/core.js'
import type { Hub } from '../../src/broker/hub.js'
import type { NodeContext } from '../../src/broker/node-context.js'
import type { ConsumerSink } from '../../src/broker/outbox.js'
import { silentLogger } from '../../src/log.js'
import { pause } from '../helpers/eventually.js'

test('a kick for a consumer whose release is under way is answered once that release is done', async t => {
  const told: [string, ControlMessage][] = []
  const core = {
    membership: {
      tell: (node: string, message: ControlMessage) => Promise.resolve(told.push([node, message])),
    },
  } as unknown as Pick<BrokerCore, 'membership' | 'presence'>
  const noOutbox = { get: () => undefined } as unknown as Hub<ConsumerSink>
  let commit!: () => void
  const committing = new Promise<void>(resolve => (commit = resolve))
  const handoff = new Handoff({
    nodeId: 'node-a',
    core,
    hub: noOutbox,
    disconnect: () => Promise.resolve(),
    releasing: consumerId => (consumerId === 'c1' ? committing : undefined),
    context: {} as NodeContext,
    takeoverWaitMs: 1000,
  })

  const answered = handoff.onKick('c1', 'node-b')
  await pause(50)
  t.deepEqual(told, [], 'not while its cursors are on their way to Redis')
  commit()
  await answered
  t.deepEqual(told, [['node-b', { type: 'released', consumerId: 'c1' }]])

  await handoff.onKick('c2', 'node-b') // nothing under way: at once
  t.is(told.length, 2)
})

test("a consumer's second takeover while the first waits: the holder's released ends it at once", async t => {
  const core = {
    membership: { tell: () => Promise.resolve() },
    presence: { isNodeAlive: () => Promise.resolve(true) },
  } as unknown as Pick<BrokerCore, 'membership' | 'presence'>
  const takeoverWaitMs = 3000
  const handoff = new Handoff({
    nodeId: 'node-a',
    core,
    hub: { get: () => undefined } as unknown as Hub<ConsumerSink>,
    disconnect: () => Promise.resolve(),
    releasing: () => undefined,
    context: { log: silentLogger } as NodeContext,
    takeoverWaitMs,
  })
  const first = handoff.takeOver('c1', 'node-b')
  await pause(20)
  const second = handoff.takeOver('c1', 'node-b')
  t.true(await first, 'the first wait ends when the second begins')
  const started = Date.now()
  handoff.onReleased('c1')
  t.true(await second)
  const tookMs = Date.now() - started
  t.true(tookMs < takeoverWaitMs / 3, `the second waited ${tookMs} ms after released`)
})
