/**
 * A Redis Cluster whose nodes require a password (`requirepass`, as
 * SECURITY.md advises): the password in the seed URLs reaches every node,
 * those learnt from the slot map included, and a message goes from a
 * producer to a consumer through it. A wrong password fails the start with
 * a reason, and without the password in it.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { connectRedis } from '../../src/cli/node.js'
import { silentLogger } from '../../src/log.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'
import { eventually } from '../helpers/eventually.js'

const PASSWORD = 'cluster-secret-hunter2'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster({ password: PASSWORD })
})
test.after.always(() => cluster?.stop())

const tokens = new Tokens([TEST_SECRET])

test('the password in the seed URLs opens every node: a message reaches its consumer', async t => {
  const { target, nodes } = cluster!
  t.true(target.kind === 'cluster' && target.nodes.every(node => node.includes(`:${PASSWORD}@`)))
  // One seed only: the other nodes are learnt from the slot map, and need the password too.
  const node = await startBroker(t, { kind: 'cluster', nodes: [`redis://:${PASSWORD}@${nodes[0]!.address}`] })
  const producer = await connectProducer(t, node.ports.producer)
  const consumer = connectConsumer('v4 websocket', node.ports.gateway, tokens.sign({ userId: newUserId() }))
  t.teardown(() => consumer.close())
  const consumerId = await consumer.opened()
  const rooms = Array.from({ length: 12 }, (_, i) => `auth-room-${i}`) // spread over the masters
  for (const room of rooms) await call(producer.joinRoom(room, consumerId))
  for (const room of rooms) producer.sendMessage(room, room)
  await eventually(() => consumer.messages.length >= rooms.length)
  t.deepEqual([...consumer.messages].sort(), [...rooms].sort())
})

test('a wrong password fails the connection with the reason, and the password is not in it', async t => {
  const seeds = cluster!.nodes.map(node => `redis://:wrong-password@${node.address}`)
  const err = await t.throwsAsync(connectRedis({ redis: { kind: 'cluster', nodes: seeds } }, silentLogger))
  t.regex(err!.message, /^cannot reach Redis at cluster redis:\/\/\*\*\*@127\.0\.0\.1:\d+/)
  t.regex(err!.message, /WRONGPASS/)
  t.false(err!.message.includes('wrong-password'))
})
