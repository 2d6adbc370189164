/**
 * A consumer's sessions on the wire: two handshakes with one token at once
 * (the engine keeps the one that opens last, and so must the node), and a
 * batch the client answers with an error.
 */
import test from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { newUserId, startBroker, TEST_SECRET } from '../helpers/broker.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

// CLIENT PAUSE holds every client of this file's Redis: no other test may run meanwhile.
test.serial(
  'two handshakes with one token at once: the session that opens last gets the messages, and its close releases the consumer',
  async t => {
    const broker = await startBroker(t, server.url)
    const userId = newUserId()
    const token = tokens.sign({ userId })
    // The first handshake's connect waits on Redis (consumer_connect is a write) while the second
    // one, finding the consumer live, opens at once; the first opens later and replaces it.
    await server.client().call('CLIENT', 'PAUSE', '700', 'WRITE')
    const first = new RawConsumer(broker.ports.gateway, token)
    t.teardown(() => first.socket.close())
    await eventually(() => broker.node.online === 1)
    const second = new RawConsumer(broker.ports.gateway, token)
    t.teardown(() => second.socket.close())
    await second.opened()
    t.false(first.isOpen, 'the first handshake is still waiting on Redis')
    await first.opened()
    await second.until(() => second.closed)

    await broker.core.producerApi.publish([[`user${userId}`, 'hello']])
    await first.until(() => first.batches.length === 1)
    t.deepEqual(first.batches[0]!.params, ['hello'])
    first.ack(first.batches[0]!.id)

    first.socket.close()
    await eventually(() => broker.node.online === 0)
    t.deepEqual(await broker.core.producerApi.consumers(userId), { length: 0, android: 0, ios: 0, web: 0 })
  },
)

test('a batch answered with an error comes again under a new id, so a client that drops a repeated id delivers it', async t => {
  const broker = await startBroker(t, server.url)
  const userId = newUserId()
  const consumer = new RawConsumer(broker.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.socket.close())
  await consumer.opened()
  await broker.core.producerApi.publish([
    [`user${userId}`, 'a'],
    [`user${userId}`, 'b'],
  ])
  await consumer.until(() => consumer.batches.length === 1)
  const failed = consumer.batches[0]!
  consumer.send({ jsonrpc: '2.0', id: failed.id, error: { code: -32000, message: 'busy' } })
  await consumer.until(() => consumer.batches.length === 2)
  const again = consumer.batches[1]!
  t.not(again.id, failed.id)
  t.deepEqual(again.params, ['a', 'b'])

  consumer.ack(again.id)
  await broker.core.producerApi.publish([[`user${userId}`, 'c']])
  await consumer.until(() => consumer.batches.length === 3)
  t.deepEqual(consumer.batches[2]!.params, ['c'], 'the acknowledged retry is not sent once more')
})
