import test, { type ExecutionContext } from 'ava'
import type { Redis } from 'ioredis'
import { makeEntry } from '../../src/broker/entry.js'
import { heldBytes } from '../../src/broker/recent.js'
import { userRoom } from '../../src/redis/keys.js'
import { publishAll, range, RecordingSink, startTestNode } from '../helpers/broker.js'
import { startRedis } from '../helpers/redis.js'
import { startRedisProxy } from '../helpers/redis-proxy.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'
import { eventually, holdsFor, pause } from '../helpers/eventually.js'
import { consumerIdOf } from '../../src/auth/token.js'
import type { Batch } from '../../src/broker/batch.js'
import type { BrokerCore } from '../../src/broker/core.js'
import type { BrokerNode } from '../../src/broker/node.js'

const redis = redisPerFile(test)

const USER = '55a07f2dee06c78e1357b0ad'
let n = 0
/** A consumer of USER, as a token makes it (its keys share the user's slot). */
const consumerId = (): string => consumerIdOf({ userId: USER, exp: ++n })

/** A Redis of the test's own (stopped when it ends), to restart or cut without touching the file's. */
async function ownRedis(t: ExecutionContext) {
  const own = await startRedis()
  t.teardown(() => own.stop())
  return { own, admin: own.client(), target: { kind: 'standalone', url: own.url } as const }
}

/**
 * The consumer `id` on `at`, in rooms `first` and `second`, with one batch of
 * both in flight and not acknowledged (`messages`: first's, second's); the
 * sink does not acknowledge by itself.
 */
/** A consumer of `room` away while 100 messages of 1,000 bytes were published there: its id and those messages. */
async function missedWhileAway(
  node: BrokerNode,
  core: BrokerCore,
  room: string,
): Promise<{ id: string; messages: string[] }> {
  const id = consumerId()
  const first = await new RecordingSink(node).connect(id, USER)
  await core.producerApi.subscribe(room, id)
  await node.disconnect(first.outbox!, first)
  const messages = range(100).map(i => i.padStart(1000, '.'))
  await publishAll(core.producerApi, room, messages)
  return { id, messages }
}

async function twoRoomBatchInFlight(
  t: ExecutionContext,
  at: { node: BrokerNode; core: BrokerCore },
  id: string,
  [first, second]: [string, string],
  messages: [string, string],
): Promise<{ sink: RecordingSink; inflight: Batch }> {
  const sink = await new RecordingSink(at.node, false).connect(id, USER)
  await at.core.producerApi.subscribe(first, id)
  await at.core.producerApi.subscribe(second, id)
  await eventually(() => sink.outbox!.hasRoom(first) && sink.outbox!.hasRoom(second))
  // Queued behind one in flight (a session's first pump sends one chunk only).
  await publishAll(at.core.producerApi, first, ['first'])
  await sink.waitFor(1)
  await publishAll(at.core.producerApi, first, ['second'])
  await eventually(() => sink.outbox!.queued === 1)
  t.true(sink.ack())
  await sink.waitFor(2)
  await at.core.producerApi.publish([
    [second, messages[1]],
    [first, messages[0]],
  ])
  await eventually(() => sink.outbox!.queued === 2)
  t.true(sink.ack())
  await sink.waitFor(4)
  const inflight = sink.batches.at(-1)!
  t.deepEqual(inflight.entries.map(entry => entry.message).sort(), [...messages].sort())
  return { sink, inflight }
}

/** A session that calls `onClose` the moment the node closes it (before the node releases it). */
class SinkClosing extends RecordingSink {
  constructor(
    node: BrokerNode,
    readonly onClose: () => void,
  ) {
    super(node)
  }

  override close(reason: string): void {
    this.onClose()
    super.close(reason)
  }
}

for (const topology of TOPOLOGIES) {
  test(`${topology}: messages to the user room arrive in order, in batches of at most 50, one in flight`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const sink = await new RecordingSink(node).connect(consumerId(), USER)
    await publishAll(core.producerApi, userRoom(USER), range(120))
    await sink.waitFor(120)
    t.deepEqual(sink.messages, range(120))
    t.true(sink.batches.every(batch => batch.entries.length <= 50))
    t.is(new Set(sink.batches.map(b => b.id)).size, sink.batches.length, 'every batch has its own id')
  })

  test(`${topology}: a consumer up to date in its own room connects without reading its log; one behind reads it`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    await publishAll(core.producerApi, userRoom(USER), ['before the consumer existed'])
    const id = consumerId()
    const first = await new RecordingSink(node).connect(id, USER)
    await eventually(() => first.outbox!.hasRoom(userRoom(USER)))
    await publishAll(core.producerApi, userRoom(USER), ['live'])
    await first.waitFor(1)
    t.deepEqual(first.messages, ['live'])
    t.is(node.counters.logReads, 0, 'joined at the head: nothing to read')
    await node.disconnect(first.outbox!, first)
    await publishAll(core.producerApi, userRoom(USER), ['missed'])
    const second = await new RecordingSink(node).connect(id, USER)
    await second.waitFor(1)
    t.deepEqual(second.messages, ['missed'])
    t.is(node.counters.logReads, 1, 'behind its own room: one read')
  })

  test(`${topology}: nothing more is sent until the batch in flight is acknowledged`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const sink = await new RecordingSink(node, false).connect(consumerId(), USER)
    await publishAll(core.producerApi, userRoom(USER), range(60))
    await sink.waitFor(1)
    await holdsFor(() => sink.batches.length === 1, 100, 'no second batch before the ack')
    const firstId = sink.batches[0]!.id
    t.false(node.ack(sink.outbox!, 'not-the-id'))
    t.true(node.ack(sink.outbox!, firstId))
    t.false(node.ack(sink.outbox!, firstId), 'that id is not in flight any more')
    await eventually(() => sink.batches.length === 2)
    sink.ack()
    await sink.waitFor(60)
    t.deepEqual(sink.messages, range(60))
  })

  test(`${topology}: a subscribe from the producer side reaches the online consumer; messages after the join arrive`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const id = consumerId()
    const sink = await new RecordingSink(node).connect(id, USER)
    await publishAll(core.producerApi, 'project', ['before'])
    t.is(await core.producerApi.subscribe('project', id), 1)
    t.is(await core.producerApi.subscribe('project', id), 0)
    await publishAll(core.producerApi, 'project', ['a', 'b', 'c'])
    await sink.waitFor(3)
    t.deepEqual(sink.messages, ['a', 'b', 'c'])
    t.is(await core.producerApi.unsubscribe('project', id), 1)
    await publishAll(core.producerApi, 'project', ['after leave'])
    await publishAll(core.producerApi, userRoom(USER), ['marker'])
    await sink.waitFor(4)
    t.deepEqual(sink.messages, ['a', 'b', 'c', 'marker'])
  })

  test(`${topology}: a room log keeps at most roomLogMaxBytes of messages, the newest`, async t => {
    const { core } = await startTestNode(t, redis.target(topology), { roomLogMaxBytes: 1000 })
    const messages = range(30).map(i => i.padStart(100, '.'))
    await publishAll(core.producerApi, 'big', messages)
    const kept = await core.redis.commands.xrange(core.keys.room('big').log, '-', '+')
    t.deepEqual(
      kept.map(([, fields]) => fields[1]),
      messages.slice(20),
    )
  })

  test(`${topology}: a consumer catching up reads at most logReadMaxBytes a read and queues at most consumerMaxQueueBytes`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology), {
      logReadMaxBytes: 10_000,
      consumerMaxQueueBytes: 5_000,
    })
    const { id, messages } = await missedWhileAway(node, core, 'catch-up')
    const reads = node.counters.logReads
    const sink = new RecordingSink(node)
    let maxQueuedBytes = 0
    const send = sink.send.bind(sink)
    sink.send = batch => {
      maxQueuedBytes = Math.max(maxQueuedBytes, sink.outbox?.queuedBytes ?? 0)
      send(batch)
    }
    await sink.connect(id, USER)
    await sink.waitFor(100)
    t.deepEqual(sink.messages, messages)
    t.true(
      node.counters.logReads - reads >= 10,
      `${node.counters.logReads - reads} reads of at most 10 messages`,
    )
    t.true(maxQueuedBytes <= 5_000, `${maxQueuedBytes} bytes queued`)
  })

  test(`${topology}: a read cut by logReadMaxBytes is followed by the next: a consumer catching up gets the whole log, with nothing published after`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology), { logReadMaxBytes: 10_000 })
    // 100 KB missed: ten reads' worth, each cut by its bytes well before its count.
    const { id, messages } = await missedWhileAway(node, core, 'cut')
    const sink = await new RecordingSink(node).connect(id, USER)
    await sink.waitFor(100)
    t.deepEqual(sink.messages, messages)
    t.deepEqual(sink.gaps, [])
  })

  test(`${topology}: the recent messages a node keeps stay within recentMaxBytesPerRoom and recentMaxBytes, none with recentMaxMessages 0`, async t => {
    const message = (i: string): string => i.padStart(1000, '.')
    const held = heldBytes(makeEntry('r', 0, 0, message('0'), undefined))
    const bounded = await startTestNode(t, redis.target(topology), {
      recentMaxBytesPerRoom: 5 * held,
      recentMaxBytes: 8 * held,
    })
    const off = await startTestNode(t, redis.target(topology), { recentMaxMessages: 0 })
    const kept: number[] = []
    for (const { node, core } of [bounded, off]) {
      const id = consumerId()
      const sink = await new RecordingSink(node).connect(id, USER)
      for (const room of ['a', 'b']) await core.producerApi.subscribe(room, id)
      for (const room of ['a', 'b']) {
        await publishAll(core.producerApi, room, range(20).map(message))
        await sink.waitFor(room === 'a' ? 20 : 40)
        kept.push(node.recentBytes)
      }
    }
    const [oneRoom, twoRooms, ...none] = kept
    t.true(oneRoom! > 0 && oneRoom! <= 5 * held, `one room: ${oneRoom} bytes, at most 5 entries' worth`)
    t.true(twoRooms! > 0 && twoRooms! <= 8 * held, `two rooms: ${twoRooms} bytes, at most 8 entries' worth`)
    t.deepEqual(none, [0, 0], 'recentMaxMessages 0 keeps none')
  })

  test(`${topology}: a consumer connected for longer than consumerTtlSec is still found by joins`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology), { consumerTtlSec: 2 })
    const id = consumerId()
    const sink = await new RecordingSink(node).connect(id, USER)
    await pause(2600) // time under test: past the ttl its keys got at connect
    t.is(await core.redis.commands.get(core.keys.consumer(id).node), node.id, 'its node key names its node')
    t.is(
      await core.redis.commands.exists(core.keys.consumer(id).rooms, core.keys.presence(USER)),
      2,
      'its rooms and presence live',
    )
    t.is(await core.producerApi.subscribe('later', id), 1)
    await publishAll(core.producerApi, 'later', ['told'])
    await sink.waitFor(1)
    t.deepEqual(sink.messages, ['told'])
  })

  test(`${topology}: a consumer that was away gets every missed message once, in order`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const id = consumerId()
    const first = await new RecordingSink(node).connect(id, USER)
    await core.producerApi.subscribe('room', id)
    await publishAll(core.producerApi, 'room', range(10))
    await first.waitFor(10)
    await node.flushCursors()
    await node.disconnect(first.outbox!, first)
    await publishAll(core.producerApi, 'room', range(300, 10))
    const second = await new RecordingSink(node).connect(id, USER)
    await second.waitFor(300)
    await holdsFor(() => second.messages.length === 300, 50, 'nothing more, nothing twice')
    t.deepEqual(second.messages, range(300, 10))
  })

  test(`${topology}: the batch in flight at a disconnect is sent again under the same id`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const id = consumerId()
    const first = await new RecordingSink(node, false).connect(id, USER)
    await publishAll(core.producerApi, userRoom(USER), range(3))
    await first.waitFor(3)
    const unacked = first.batches[0]!
    await node.disconnect(first.outbox!, first)
    const second = await new RecordingSink(node).connect(id, USER)
    await eventually(() => second.batches.length > 0)
    t.is(second.batches[0]!.id, unacked.id)
    t.deepEqual(
      second.batches[0]!.entries.map(e => e.message),
      range(3),
    )
  })

  test(`${topology}: a rolling upgrade: a batch record of the version before (no first messages) comes again under its id, and is not reused once acknowledged`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const id = consumerId()
    const { inflight: recordKey } = core.keys.consumer(id)
    /** The record as a node of 9a1ea17 wrote it: [id, rooms, room index of each message], no first messages. */
    const asOlderVersion = async () => {
      const [batchId, rooms, order] = JSON.parse((await core.redis.commands.get(recordKey))!) as unknown[]
      return JSON.stringify([batchId, rooms, order])
    }
    const first = await new RecordingSink(node, false).connect(id, USER)
    for (const room of ['p', 'q']) await core.producerApi.subscribe(room, id)
    await eventually(() => first.outbox!.hasRoom('p') && first.outbox!.hasRoom('q'))
    // A batch of both rooms (a session's first batch, from the cursors, would hold one room only).
    await publishAll(core.producerApi, 'p', ['first'])
    await first.waitFor(1)
    await publishAll(core.producerApi, 'p', ['second'])
    await eventually(() => first.outbox!.queued === 1)
    t.true(first.ack())
    await first.waitFor(2)
    await core.producerApi.publish([
      ['q', 'q1'],
      ['p', 'p1'],
    ])
    await eventually(() => first.outbox!.queued === 2)
    t.true(first.ack())
    await first.waitFor(4)
    const unacked = first.batches.at(-1)!
    t.deepEqual(unacked.entries.map(e => e.message).sort(), ['p1', 'q1'])
    await node.disconnect(first.outbox!, first)
    const older = await asOlderVersion()
    await core.redis.commands.set(recordKey, older)
    const second = await new RecordingSink(node, false).connect(id, USER)
    await eventually(() => second.batches.length > 0)
    t.is(second.batches[0]!.frame, unacked.frame, 'the same batch, same id: the client drops it')
    // Acknowledged there, then that node crashed: its record of the release before stays.
    t.true(second.ack())
    await core.producerApi.publish([
      ['q', 'q2'],
      ['p', 'p2'],
    ])
    await second.waitFor(3) // q2 in flight, p2 behind it
    await node.disconnect(second.outbox!, second)
    await core.redis.commands.set(recordKey, older)
    const third = await new RecordingSink(node).connect(id, USER)
    await third.waitFor(2)
    t.not(
      third.batches[0]!.id,
      unacked.id,
      'the next messages under an id of their own: the client keeps them',
    )
    t.deepEqual([...third.messages].sort(), ['p2', 'q2'])
  })

  test(`${topology}: a slow consumer overflows to the log and still gets everything in order`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology), {
      consumerMaxQueue: 60,
      batchMaxMessages: 20,
    })
    const sink = await new RecordingSink(node, false).connect(consumerId(), USER)
    for (let i = 0; i < 10; i++) await publishAll(core.producerApi, userRoom(USER), range(50, i * 50))
    await sink.waitFor(1)
    t.true(sink.outbox!.queued <= 60)
    sink.autoAck = true
    sink.ack()
    await sink.waitFor(500)
    t.deepEqual(sink.messages, range(500))
  })

  test(`${topology}: a lost announcement is healed from the log at the next one`, async t => {
    const { node, core, config } = await startTestNode(t, redis.target(topology))
    const sink = await new RecordingSink(node).connect(consumerId(), USER)
    await publishAll(core.producerApi, userRoom(USER), ['1'])
    await sink.waitFor(1)
    const keys = core.keys.room(userRoom(USER))
    // Appended, but announced where nobody listens (a channel on the room's slot):
    await core.redis.commands.roomAppend(
      4,
      keys.log,
      keys.head,
      `${keys.channel}:nowhere`,
      core.keys.track(userRoom(USER), ''),
      config.roomLogMaxLen,
      config.roomLogMaxBytes,
      60,
      core.redis.pubsub.publishCommand,
      '',
      0,
      0,
      '',
      2,
      '2',
      '3',
    )
    await publishAll(core.producerApi, userRoom(USER), ['4'])
    await sink.waitFor(4)
    t.deepEqual(sink.messages, ['1', '2', '3', '4'])
  })

  // CLIENT KILL must not hit the other tests' subscribers: on its own Redis, or alone on the cluster
  // (serial tests run before the others). On a cluster every master's subscriber connection drops.
  ;(topology === 'cluster' ? test.serial : test)(
    `${topology}: announcements and joins lost while the subscriber was disconnected are read after it reconnects`,
    async t => {
      let admins: Redis[]
      let target = redis.target(topology)
      if (topology === 'standalone') {
        const own = await startRedis()
        t.teardown(() => own.stop())
        admins = [own.client()]
        target = { kind: 'standalone', url: own.url }
      } else admins = redis.cluster.nodes.map(({ port }) => redis.cluster.nodeClient(port))
      const { node, core } = await startTestNode(t, target)
      const id = consumerId()
      const sink = await new RecordingSink(node).connect(id, USER)
      await core.producerApi.subscribe('left', id)
      await publishAll(core.producerApi, userRoom(USER), ['1'])
      await sink.waitFor(1)
      const subscriber = core.redis.subscriber
      // ioredis: the client closes (standalone); a sharded subscriber's node leaves the group (cluster).
      const down = new Promise(resolve =>
        subscriber.once(topology === 'standalone' ? 'close' : '-node', resolve),
      )
      await Promise.all(admins.map(admin => admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')))
      await down
      await core.producerApi.subscribe('joined', id)
      await core.producerApi.unsubscribe('left', id)
      await publishAll(core.producerApi, userRoom(USER), ['2', '3'])
      await publishAll(core.producerApi, 'joined', ['4'])
      await publishAll(core.producerApi, 'left', ['not for me'])
      await sink.waitFor(4)
      await publishAll(core.producerApi, userRoom(USER), ['5'])
      await sink.waitFor(5)
      // Order is per room: the node reads each room's log again after the reconnect, in no set order of rooms.
      const roomOf = new Map(
        sink.batches.flatMap(batch => batch.entries.map(entry => [entry.message, entry.room])),
      )
      const inRoom = (room: string): string[] => sink.messages.filter(message => roomOf.get(message) === room)
      t.deepEqual(inRoom(userRoom(USER)), ['1', '2', '3', '5'])
      t.deepEqual(inRoom('joined'), ['4'])
      t.deepEqual([...sink.messages].sort(), ['1', '2', '3', '4', '5'], 'each once, nothing of the room left')
    },
  )

  if (topology === 'standalone')
    test('a session whose record Redis lost (restarted empty) is written again when the node reconciles, and goes on', async t => {
      const { admin, target } = await ownRedis(t)
      const { node, core } = await startTestNode(t, target)
      const id = consumerId()
      const sink = await new RecordingSink(node).connect(id, USER)
      await core.producerApi.subscribe('kept', id)
      await publishAll(core.producerApi, 'kept', ['joined'])
      await sink.waitFor(1) // the node follows the room
      const { node: nodeKey, rooms } = core.keys.consumer(id)
      await core.redis.commands.del(nodeKey, rooms)
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub') // the reconnect makes the node reconcile
      await eventually(async () => (await admin.get(nodeKey)) === node.id, {
        what: 'the record written again',
      })
      t.deepEqual(Object.keys(await admin.hgetall(rooms)).sort(), ['kept', userRoom(USER)].sort())
      await publishAll(core.producerApi, 'kept', ['still here'])
      await sink.waitFor(2)
      t.deepEqual(sink.messages, ['joined', 'still here'])
      t.is(sink.closed, undefined)
    })

  if (topology === 'standalone')
    test('a session whose node key went while its rooms stayed (released by another node) is closed when the node reconciles', async t => {
      const { admin, target } = await ownRedis(t)
      const { node, core } = await startTestNode(t, target)
      const id = consumerId()
      const sink = await new RecordingSink(node).connect(id, USER)
      await core.redis.commands.del(core.keys.consumer(id).node)
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub') // the reconnect makes the node reconcile
      await eventually(() => sink.closed !== undefined, { what: 'the session to close' })
      t.is(sink.closed, 'session record lost in Redis')
    })

  test(`${topology}: two nodes: a join made through one reaches the consumer on the other; a takeover kicks`, async t => {
    const a = await startTestNode(t, redis.target(topology))
    const b = await startTestNode(t, redis.target(topology), { redisPrefix: a.config.redisPrefix })
    const id = consumerId()
    const onA = await new RecordingSink(a.node).connect(id, USER)
    t.is(await b.core.producerApi.subscribe('shared', id), 1)
    await publishAll(b.core.producerApi, 'shared', ['x', 'y'])
    await onA.waitFor(2)
    t.deepEqual(onA.messages, ['x', 'y'])
    t.deepEqual(await b.core.producerApi.consumers(USER), { length: 1, android: 0, ios: 0, web: 1 })

    const onB = await new RecordingSink(b.node).connect(id, USER)
    t.is(onA.closed, 'taken over by another node', 'closed before the new session starts')
    await publishAll(a.core.producerApi, 'shared', ['z'])
    await onB.waitFor(1)
    t.deepEqual(onB.messages, ['z'], 'acknowledged messages are not sent again')
    t.deepEqual(await a.core.producerApi.consumers(USER), { length: 1, android: 0, ios: 0, web: 1 })
  })

  for (const rejoins of [false, true])
    test(`${topology}: a batch in flight that holds a room ${rejoins ? 'left and joined again' : 'left'} meanwhile comes again under its id on the next node`, async t => {
      const a = await startTestNode(t, redis.target(topology))
      const b = await startTestNode(t, redis.target(topology), { redisPrefix: a.config.redisPrefix })
      const id = consumerId()
      const { sink: onA, inflight } = await twoRoomBatchInFlight(t, a, id, ['kept', 'other'], ['k1', 'o1'])
      // Not acknowledged: the consumer leaves one of its rooms (and joins it again, at its newer head), then moves to b.
      t.is(await b.core.producerApi.unsubscribe('other', id), 1)
      if (rejoins) {
        await eventually(() => !onA.outbox!.hasRoom('other'))
        await publishAll(b.core.producerApi, 'other', ['while away'])
        t.is(await b.core.producerApi.subscribe('other', id), 1)
        await eventually(() => onA.outbox!.hasRoom('other'))
      }
      await a.node.disconnect(onA.outbox!, onA)
      const onB = await new RecordingSink(b.node).connect(id, USER)
      await eventually(() => onB.batches.length > 0)
      t.is(onB.batches[0]!.id, inflight.id, 'the same batch, which the client drops')
      t.true(onB.ack()) // sent while connecting, before the sink knew its outbox
      await publishAll(b.core.producerApi, 'kept', ['k2'])
      await publishAll(b.core.producerApi, 'other', ['o2'])
      await publishAll(b.core.producerApi, 'kept', ['k3'])
      await eventually(() => onB.batches.some(batch => batch.entries.some(entry => entry.message === 'k3')))
      // What a client that drops a repeat of its last batch id hands to its application on b.
      const fresh = onB.batches.filter(batch => batch.id !== inflight.id).flatMap(batch => batch.entries)
      const inRoom = (room: string): string[] =>
        fresh.filter(entry => entry.room === room).map(entry => entry.message)
      t.deepEqual(inRoom('kept'), ['k2', 'k3'], 'k1 not a second time under another id')
      t.deepEqual(
        inRoom('other'),
        rejoins ? ['o2'] : [],
        'nothing from before the join, nothing after the leave',
      )
    })

  // CLIENT PAUSE holds every client's writes: on its own Redis, not to stall the other tests.
  if (topology === 'standalone')
    test('a node stopped while a consumer moves to it leaves the batch in flight to the next node, under its id', async t => {
      const { admin, target } = await ownRedis(t)
      const a = await startTestNode(t, target)
      const b = await startTestNode(t, target, { redisPrefix: a.config.redisPrefix })
      const c = await startTestNode(t, target, { redisPrefix: a.config.redisPrefix })
      const id = consumerId()
      const { sink: onA, inflight } = await twoRoomBatchInFlight(t, a, id, ['one', 'two'], ['o1', 't1'])
      await a.node.disconnect(onA.outbox!, onA)
      // Its node key names a live node that never answers the kick: b waits the whole takeover
      // wait (1 s) before it takes the consumer. Redis holds that take and, behind it, the
      // release that b's stop sends for the consumer it is still connecting.
      await b.core.presence.touchNode('silent', 10_000)
      await admin.set(b.core.keys.consumer(id).node, 'silent')
      const connecting = new RecordingSink(b.node).connect(id, USER)
      await pause(700)
      await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE')
      await pause(600)
      await Promise.all([b.node.stop(0), connecting])
      const onC = await new RecordingSink(c.node).connect(id, USER)
      await eventually(() => onC.batches.length > 0)
      t.is(onC.batches[0]!.id, inflight.id, 'the same batch, which the client drops')
    })

  test(`${topology}: a holder alive but silent (frozen) is waited for takeoverWaitMs, then the consumer is taken`, async t => {
    for (const takeoverWaitMs of [300, 2500]) {
      const { node, core } = await startTestNode(t, redis.target(topology), { takeoverWaitMs })
      const id = consumerId()
      // A live node key, a node that never answers the kick: a node stopped with SIGSTOP.
      await core.presence.touchNode('frozen', 10_000)
      await core.redis.commands.set(core.keys.consumer(id).node, 'frozen')
      const started = Date.now()
      await new RecordingSink(node).connect(id, USER)
      const tookMs = Date.now() - started
      t.true(
        tookMs >= takeoverWaitMs && tookMs < takeoverWaitMs + 1000,
        `${takeoverWaitMs}: took ${tookMs} ms`,
      )
    }
  })

  if (topology === 'standalone')
    test('a holder that took the consumer again while the node taking it over waited is kicked once more', async t => {
      const own = await startRedis()
      t.teardown(() => own.stop())
      const proxy = await startRedisProxy(own.port)
      t.teardown(() => proxy.close())
      const a = await startTestNode(t, { kind: 'standalone', url: own.url })
      const b = await startTestNode(t, proxy.url, { redisPrefix: a.config.redisPrefix })
      const id = consumerId()
      // b's connections drop as a closes the session b kicked, so a's `released` never reaches b,
      // which takes the consumer when its takeover wait (1 s) is over.
      const first = await new SinkClosing(a.node, () => proxy.down()).connect(id, USER)
      const taking = new RecordingSink(b.node).connect(id, USER)
      await eventually(() => first.closed !== undefined)
      // Meanwhile the consumer comes back to a (a reconnect): a holds it again, with a new session.
      const again = await new RecordingSink(a.node).connect(id, USER)
      proxy.up()
      const onB = await taking
      await eventually(() => again.closed !== undefined, { what: 'the new session on a to close' })
      t.is(again.closed, 'taken over by another node')
      await publishAll(a.core.producerApi, userRoom(USER), ['after the takeover'])
      await onB.waitFor(1)
      await holdsFor(() => again.messages.length === 0, 100, 'one session delivers, not two')
      t.deepEqual(onB.messages, ['after the takeover'])
    })

  test(`${topology}: a join and a leave whose notices reach the node in the other order leave the consumer where Redis says`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const id = consumerId()
    const sink = await new RecordingSink(node).connect(id, USER)
    const { rooms, node: nodeKey, left } = core.keys.consumer(id)
    const { commands } = core.redis
    // Two producers: a join, then a leave of the same room, each script in turn; their notices cross.
    const [added] = await commands.consumerJoin(rooms, nodeKey, left, 'crossed', '0-0', 600, 1000)
    const [removed] = await commands.consumerLeave(rooms, nodeKey, left, 'crossed', userRoom(USER), 600)
    t.deepEqual([added, removed], [1, 1])
    await core.membership.tell(node.id, { type: 'leave', consumerId: id, room: 'crossed' })
    await core.membership.tell(node.id, { type: 'join', consumerId: id, room: 'crossed', cursor: '0-0' })
    await pause(100)
    await publishAll(core.producerApi, 'crossed', ['not for the consumer'])
    await publishAll(core.producerApi, userRoom(USER), ['marker'])
    await sink.waitFor(1)
    await pause(100)
    t.deepEqual(sink.messages, ['marker'])
    t.false(sink.outbox!.hasRoom('crossed'))
    t.is(node.roomCount, 1, 'the room is not followed')
  })

  test(`${topology}: presence counts by platform and drops a consumer at once when it leaves`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const user = 'ffffffffffffffffffffffff'
    const ids = ['android', 'ios', 'web', 'other'].map(source =>
      consumerIdOf({ userId: user, exp: 1, source }),
    )
    const sinks = await Promise.all(ids.map(id => new RecordingSink(node).connect(id, user)))
    t.deepEqual(await core.producerApi.consumers(user), { length: 4, android: 1, ios: 1, web: 2 })
    await node.disconnect(sinks[0]!.outbox!, sinks[0]!)
    t.deepEqual(await core.producerApi.consumers(user), { length: 3, android: 0, ios: 1, web: 2 })
  })

  if (topology === 'standalone')
    test("presence counts none of a user's 150,000 entries of crashed nodes, and drops them all", async t => {
      const { core } = await startTestNode(t, redis.target(topology))
      const user = 'eeeeeeeeeeeeeeeeeeeeeeee'
      const key = core.keys.presence(user)
      for (let start = 0; start < 150_000; start += 10_000) {
        const fields = Array.from({ length: 10_000 }, (_, i) => [`stale-${start + i}`, 'crashed-node'])
        await core.redis.commands.hset(key, Object.fromEntries(fields))
      }
      t.deepEqual(await core.producerApi.consumers(user), { length: 0, android: 0, ios: 0, web: 0 })
      await eventually(async () => (await core.redis.commands.hlen(key)) === 0, {
        what: 'the entries dropped',
      })
    })

  test(`${topology}: cursors are persisted: a second node resumes where the first left off`, async t => {
    const a = await startTestNode(t, redis.target(topology))
    const b = await startTestNode(t, redis.target(topology), { redisPrefix: a.config.redisPrefix })
    const id = consumerId()
    const onA = await new RecordingSink(a.node).connect(id, USER)
    await publishAll(a.core.producerApi, userRoom(USER), range(5))
    await onA.waitFor(5)
    await a.node.disconnect(onA.outbox!, onA)
    await publishAll(a.core.producerApi, userRoom(USER), range(5, 5))
    const onB = await new RecordingSink(b.node).connect(id, USER)
    await onB.waitFor(5)
    await holdsFor(() => onB.messages.length === 5, 50, 'nothing more, nothing twice')
    t.deepEqual(onB.messages, range(5, 5))
  })
}
