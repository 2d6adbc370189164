/**
 * One pub/sub interface over both topologies: plain channels on one Redis,
 * sharded channels on a Cluster (channels on different masters included).
 */
import test from 'ava'
import { silentLogger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { MAX_CHANNELS_PER_COMMAND } from '../../src/redis/pubsub.js'
import { Keys } from '../../src/redis/keys.js'
import { startRedis, uniquePrefix } from '../helpers/redis.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'
import { eventually } from '../helpers/eventually.js'

const redis = redisPerFile(test)

for (const topology of TOPOLOGIES) {
  test(`${topology}: what is published on a subscribed channel arrives with its channel, until unsubscribed`, async t => {
    const { pubsub } = await redis.clients(topology, t)
    const keys = new Keys(uniquePrefix())
    // Rooms on several slots: on a cluster, channels served by different masters.
    const channels = ['a', 'b', 'c', 'd'].map(room => keys.room(room).channel)
    const received: [string, string][] = []
    pubsub.onMessage((channel, message) => received.push([channel, message.toString()]))
    await Promise.all(channels.map(channel => pubsub.subscribe(channel)))
    for (const channel of channels) await pubsub.publish(channel, Buffer.from(`to ${channel}`))
    await eventually(() => received.length === channels.length)
    t.deepEqual(
      received.sort(),
      channels.map(channel => [channel, `to ${channel}`]),
    )

    await pubsub.unsubscribe(channels[0]!)
    await pubsub.publish(channels[0]!, Buffer.from('not heard'))
    await pubsub.publish(channels[1]!, Buffer.from('heard'))
    await eventually(() => received.length === channels.length + 1)
    t.deepEqual(received.at(-1), [channels[1]!, 'heard'])
  })

  test(`${topology}: the append script announces with the interface's publish command`, async t => {
    const { pubsub, commands } = await redis.clients(topology, t)
    const keys = new Keys(uniquePrefix())
    const { log, head, channel } = keys.room('r')
    const received: string[] = []
    pubsub.onMessage(name => received.push(name))
    await pubsub.subscribe(channel)
    await commands.roomAppend(
      4,
      log,
      head,
      channel,
      keys.track('r', ''),
      10,
      1 << 20,
      60,
      pubsub.publishCommand,
      '',
      0,
      0,
      '',
      1,
      'm',
    )
    await eventually(() => received.length === 1)
    t.deepEqual(received, [channel])
  })
}

test('standalone: the subscriptions asked in one turn go as few commands as their order allows', async t => {
  const own = await startRedis()
  t.teardown(() => own.stop())
  const clients = createRedisClients({ kind: 'standalone', url: own.url }, silentLogger)
  t.teardown(() => clients.quit())
  await clients.connect(5000)
  const { pubsub } = clients
  const keys = new Keys(uniquePrefix())
  const channels = Array.from({ length: 100 }, (_, i) => keys.room(`r${i}`).channel)
  const received: string[] = []
  pubsub.onMessage(channel => received.push(channel))
  const stats = own.client()
  await stats.config('RESETSTAT')
  await Promise.all(channels.map(channel => pubsub.subscribe(channel)))
  t.regex(await stats.info('commandstats'), /cmdstat_subscribe:calls=1,/, 'one SUBSCRIBE for 100 channels')

  // Asked in this order in one turn: r0 ends subscribed, r1 does not.
  const [r0, r1] = channels as [string, string]
  await Promise.all([
    pubsub.unsubscribe(r0),
    pubsub.subscribe(r0),
    pubsub.subscribe(r1),
    pubsub.unsubscribe(r1),
  ])
  await pubsub.publish(r1, Buffer.from('not heard'))
  await pubsub.publish(r0, Buffer.from('heard'))
  await eventually(() => received.length === 1)
  t.deepEqual(received, [r0])
})

test('standalone: 150,000 channels subscribed in one turn go in commands of bounded size, and each is heard', async t => {
  const { pubsub } = await redis.clients('standalone', t)
  const keys = new Keys(uniquePrefix())
  const channels = Array.from({ length: 150_000 }, (_, i) => keys.room(`r${i}`).channel)
  const received: string[] = []
  pubsub.onMessage(channel => received.push(channel))
  // One turn, as when the takes of a storm of consumers with many rooms each are answered in one read.
  // Spread into one SUBSCRIBE, 150,000 channels overflowed the stack in setImmediate: the process crashed.
  await Promise.all(channels.map(channel => pubsub.subscribe(channel)))
  for (const channel of [channels[0]!, channels[MAX_CHANNELS_PER_COMMAND]!, channels.at(-1)!])
    await pubsub.publish(channel, Buffer.from('heard'))
  await eventually(() => received.length === 3)
  t.deepEqual(received, [channels[0], channels[MAX_CHANNELS_PER_COMMAND], channels.at(-1)])
})
