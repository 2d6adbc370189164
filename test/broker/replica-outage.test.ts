/**
 * redisReplicaAcks > 0 through a Redis outage: what producers send while the
 * broker cannot reach Redis waits, in order, and is stored once Redis is back
 * (as without replica acks), instead of failing at the writer's first failed
 * reconnect. Only appends already written to the socket may fail.
 */
import test from 'ava'
import { ORIGIN } from '../../src/broker/cursor.js'
import { startTestNode } from '../helpers/broker.js'
import { startRedisProxy } from '../helpers/redis-proxy.js'
import { startRedis } from '../helpers/redis.js'
import { authedRawProducer, frame, SECRET } from '../producer/setup.js'
import { eventually } from '../helpers/eventually.js'

const publish = (id: string | undefined, room: string, message: string): string =>
  frame(
    JSON.stringify({
      jsonrpc: '2.0',
      ...(id !== undefined && { id }),
      method: 'publish',
      params: [[room, message]],
    }),
  )
const reply = (id: string, result: unknown): string => frame(JSON.stringify({ jsonrpc: '2.0', id, result }))

test('standalone with a replica: a publish request and a notification sent during an outage are stored, in order, once Redis is back', async t => {
  const master = await startRedis(['--repl-diskless-sync-delay', '0'])
  t.teardown(() => master.stop())
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port)])
  t.teardown(() => replica.stop())
  const masterClient = master.client()
  for (;;) {
    await masterClient.set('probe', 'x')
    if ((await masterClient.wait(1, 1000)) === 1) break
  }
  const proxy = await startRedisProxy(master.port)
  t.teardown(() => proxy.close())
  const { core, config } = await startTestNode(t, proxy.url, { redisReplicaAcks: 1, tokenSecrets: [SECRET] })
  const { listener, producer } = await authedRawProducer(t, core, config)
  producer.send(publish('before', 'r', 'before'))
  t.is(await producer.expect(reply('before', 1)), reply('before', 1))

  const writer = core.redis.replicatedWriter().client
  t.teardown(() => proxy.up()) // first: the teardowns above wait for what is pending to be stored
  proxy.down()
  await eventually(() => writer.status !== 'ready')
  const framesBefore = listener.stats.frames
  producer.send(publish(undefined, 'r', 'notified') + publish('during', 'r', 'requested'))
  await eventually(() => listener.stats.frames === framesBefore + 2) // both handed to the broker
  // A failed reconnect after that: it used to fail every append queued for the writer.
  await new Promise(resolve => writer.once('reconnecting', resolve))
  t.is(producer.buffered, 0, 'no answer during the outage')
  proxy.up()

  t.is(await producer.expect(reply('during', 1)), reply('during', 1))
  const messages = (await core.log.read('r', ORIGIN, 10)).map(entry => entry.message)
  t.deepEqual(messages, ['before', 'notified', 'requested'])
  // The answer waited for the replica, and the notification went before the request.
  const onReplica = await replica.client().xrange(core.keys.room('r').log, '-', '+')
  t.deepEqual(
    onReplica.map(([, fields]) => fields[1]),
    messages,
  )
  t.is(listener.stats.errors.STORE_UNAVAILABLE, undefined)
})
