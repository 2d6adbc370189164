/**
 * The user's side of local-redis.test.ts, run inside the broker's private
 * network namespace (nsenter), where the test process cannot connect:
 * waits until the broker is ready, connects a consumer, publishes
 * `count` messages to it, prints "delivered" once they arrived, and stays
 * connected until the broker closes it or the test kills this process.
 *
 * argv: adminPort gatewayPort producerPort secret count
 */
import Producer from 'snapper-producer'
import { Tokens } from '../../src/auth/token.js'
import { newUserId } from '../helpers/broker.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually } from '../helpers/eventually.js'

const [adminPort, gatewayPort, producerPort, count] = [2, 3, 4, 6].map(i => Number(process.argv[i]))
const secret = process.argv[5] ?? ''

const isReady = (): Promise<boolean> =>
  fetch(`http://127.0.0.1:${adminPort}/readyz`).then(
    response => response.status === 200,
    () => false,
  )
await eventually(isReady, { timeoutMs: 30_000 })

const userId = newUserId()
const consumer = connectConsumer('v4 websocket', gatewayPort!, new Tokens([secret]).sign({ userId }))
await consumer.opened()
const producer = new Producer(producerPort!, { secretKeys: [secret], producerId: 'local-redis-test' })
producer.on('error', () => {}) // the broker drains under it: a close is expected
await new Promise(resolve => producer.once('connect', resolve))
for (let i = 0; i < count!; i++) producer.sendMessage(`user${userId}`, String(i))
await consumer.waitFor(count!)
process.stdout.write('delivered\n')
