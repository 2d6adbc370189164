/**
 * Releasing a consumer on a kick: the `released` notice follows the cursor
 * commit, and a kick while the consumer is still connecting leaves no trace;
 * a release (and a restore) of a consumer in very many rooms.
 */
import test from 'ava'
import { formatCursor } from '../../src/broker/cursor.js'
import { userRoom } from '../../src/redis/keys.js'
import { newUserId, publishAll, range, RecordingSink, startTestNode } from '../helpers/broker.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'
import { eventually, within } from '../helpers/eventually.js'
import { consumerIdOf } from '../../src/auth/token.js'

const redis = redisPerFile(test)

const USER = '55a07f2dee06c78e1357b0ad'
let n = 0
/** A consumer of the user (USER unless named), as a token makes it (its keys share the user's slot). */
const consumerId = (userId = USER): string => consumerIdOf({ userId, exp: ++n })

// Only on a cluster can the notice overtake the commit: on one Redis both go down one connection, in order.
// Serial: CLIENT PAUSE holds every client of that master.
test.serial('cluster: the released notice is sent only once the cursors are committed', async t => {
  const { node, core } = await startTestNode(t, redis.target('cluster'), { cursorFlushMs: 600_000 })
  const { cluster } = redis
  const watcher = 'watcher'
  const notices = core.keys.nodeChannel(watcher)
  // The consumer's keys on a master that neither control channel uses, so that pausing it holds the
  // commit only. A consumer's keys are on its user's slot: look for such a user.
  const busy = new Set([
    (await cluster.masterOf(notices)).port,
    (await cluster.masterOf(core.keys.nodeChannel(node.id))).port,
  ])
  const user = await eventually(
    async () => {
      const candidate = newUserId()
      const { port } = await cluster.masterOf(core.keys.consumer(consumerId(candidate)).rooms)
      return !busy.has(port) && candidate
    },
    { what: `a user whose keys are on a master other than ${[...busy].join(' and ')}`, everyMs: 0 },
  )
  const id = consumerId(user)
  const { rooms } = core.keys.consumer(id)
  const paused = cluster.nodeClient((await cluster.masterOf(rooms)).port)

  const sink = await new RecordingSink(node).connect(id, user)
  await publishAll(core.producerApi, userRoom(user), range(3))
  await sink.waitFor(3)
  await eventually(() => sink.outbox!.inflight === undefined) // acknowledged, not flushed
  const last = sink.batches[sink.batches.length - 1]!.entries.at(-1)!

  const listener = cluster.nodeClient((await cluster.masterOf(notices)).port)
  const cursorAtNotice = new Promise<string | null>(resolve => {
    listener.on('smessageBuffer', () => resolve(paused.hget(rooms, userRoom(user))))
  })
  await listener.ssubscribe(notices)
  await paused.call('CLIENT', 'PAUSE', '500', 'WRITE')
  await core.membership.tell(node.id, { type: 'kick', consumerId: id, byNode: watcher })
  t.is(await within(cursorAtNotice, 15_000, 'the released notice'), formatCursor(last))
})

for (const topology of TOPOLOGIES) {
  test(`${topology}: a kick while the consumer is still connecting leaves it neither counted nor held`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology))
    const id = consumerId()
    const { node: nodeKey } = core.keys.consumer(id)
    // A live node holds the consumer but never answers: connect() waits TAKEOVER_WAIT_MS for it.
    await core.presence.touchNode('ghost', 60_000)
    await core.redis.commands.set(nodeKey, 'ghost')
    const sink = new RecordingSink(node)
    const connecting = node.connect(id, USER, sink)
    await core.membership.tell(node.id, { type: 'kick', consumerId: id, byNode: 'elsewhere' })
    await eventually(() => node.counters.kicks === 1)
    await connecting
    t.is(sink.closed, 'taken over by another node')
    t.is(node.online, 0)
    t.deepEqual(await core.producerApi.consumers(USER), { length: 0, android: 0, ios: 0, web: 0 })
    t.is(await core.redis.commands.get(nodeKey), null)
  })
}

for (const topology of TOPOLOGIES) {
  test(`${topology}: an ack that reaches a released outbox is refused and writes nothing for the consumer`, async t => {
    const { node, core } = await startTestNode(t, redis.target(topology), { cursorFlushMs: 600_000 })
    const id = consumerId()
    const sink = await new RecordingSink(node, false).connect(id, USER)
    await core.producerApi.subscribe('room', id)
    await publishAll(core.producerApi, 'room', range(3))
    await sink.waitFor(3)
    const batch = sink.batches.at(-1)!
    await node.disconnect(sink.outbox!, sink)
    const { rooms, inflight } = core.keys.consumer(id)
    const committed = await core.redis.commands.hget(rooms, 'room')
    const record = await core.redis.commands.get(inflight)
    t.not(record, null, 'released with its batch in flight')

    t.false(node.ack(sink.outbox!, batch.id), 'the ack is refused: the outbox is released')
    await node.flushCursors()
    t.deepEqual(await core.redis.commands.hgetall(core.keys.room('room').progress), {}, 'no progress entry')
    t.is(await core.redis.commands.hget(rooms, 'room'), committed, 'the committed cursor stands')
    t.is(await core.redis.commands.get(inflight), record, 'the batch in flight stays to be sent again')
    t.is(node.counters.messagesAcked, 0)
  })
}

// A consumer's rooms went to Redis spread into one call each, two arguments a room: at about
// 62,000 rooms (maxRoomsPerConsumer raised) that overflowed the stack.
test('standalone: a consumer in 70,000 rooms is restored after a data loss and released with every cursor', async t => {
  const { node, core } = await startTestNode(t, redis.target('standalone'), {
    maxRoomsPerConsumer: 100_000,
    cursorFlushMs: 600_000,
    nodeTtlMs: 1500, // the liveness check that finds the loss runs every 500 ms
  })
  const id = consumerId()
  const { rooms, node: nodeKey } = core.keys.consumer(id)
  const joined = range(70_000).map(i => `r${i}`)
  await core.redis.commands.hset(rooms, Object.fromEntries(joined.map(room => [room, '0-0'])))
  const sink = await new RecordingSink(node).connect(id, USER)
  await core.producerApi.publish([['r69999', 'last']])
  await sink.waitFor(1)
  await eventually(() => sink.outbox!.inflight === undefined) // acknowledged, not flushed
  const { ms, seq } = sink.batches[0]!.entries[0]!

  // Redis lost the consumer's record and the node's liveness key: the node writes the record again.
  await core.redis.commands.del(rooms, nodeKey, core.keys.nodeAlive(node.id))
  await eventually(async () => (await core.redis.commands.hlen(rooms)) === 70_001, {
    what: 'the record written again',
  })
  await node.disconnect(sink.outbox!, sink)
  t.is(await core.redis.commands.hget(rooms, 'r69999'), formatCursor({ ms, seq }), 'its cursor committed')
  t.is(await core.redis.commands.get(nodeKey), null, 'released')
})
