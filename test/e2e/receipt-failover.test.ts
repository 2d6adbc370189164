/**
 * A tracked message's receipt through a Redis Cluster failover: a consumer
 * acknowledges while the master that holds the message's track hash is down,
 * longer than ioredis retries a command bound for it (about 1.7 s). The
 * consumer never acks again (its cursor moved on), so the receipt write must
 * wait for the promoted replica. The cluster is this file's own: a failover
 * stops the whole cluster for a moment.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { Keys, userRoom } from '../../src/redis/keys.js'
import { call, connectProducer, newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { eventually } from '../helpers/eventually.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  // Failed over about 3 s after the kill: well past ioredis' retries.
  cluster = await startRedisCluster({ nodeTimeoutMs: 3000 })
})
test.after.always(() => cluster?.stop())

const tokens = new Tokens([TEST_SECRET])

interface Receipt {
  acked: { userId: string; ackedAt: number }[]
  moreAcks: number
  escalated: boolean
}

test('an ack sent while the master of its track hash fails over is in the receipt once the cluster is back', async t => {
  const redis = cluster!
  const broker = await startBroker(t, redis.target, { redisReplicaAcks: 1 })
  const keys = new Keys(broker.config.redisPrefix)
  const userId = newUserId()
  const room = userRoom(userId)
  const consumer = new RawConsumer(broker.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  const producer = await connectProducer(t, broker.ports.producer)
  const { id } = (await call(producer.request('track', [room, 'did you see it?']))) as { id: string }
  await consumer.until(() => consumer.batches.length === 1)
  const killed = redis.killMaster(keys.room(room).log)
  await new Promise(resolve => setTimeout(resolve, 50)) // the master is gone
  const ackedAt = Date.now()
  consumer.ack(consumer.batches[0]!.id)
  const nodes = await killed
  const failoverMs = Date.now() - ackedAt
  t.log(`killed ${nodes.killed.address}, promoted ${nodes.promoted.address} ${failoverMs} ms after the ack`)
  t.true(failoverMs > 2000, 'the master was down longer than ioredis retries (else this proves nothing)')
  let receipt: Receipt | undefined
  await eventually(
    async () => {
      receipt = (await call(producer.request('receipt', [id]))) as Receipt
      return receipt.acked.length > 0
    },
    { timeoutMs: 5000, what: 'the ack in the receipt' },
  ).catch(() => {})
  t.deepEqual(
    receipt?.acked.map(({ userId: user }) => user),
    [userId],
    'the ack is in the receipt, once',
  )
  const [{ ackedAt: recorded } = { ackedAt: 0 }] = receipt?.acked ?? []
  t.true(
    recorded >= ackedAt && recorded < ackedAt + 1000,
    'when the node got the ack, not when it was stored',
  )
})
