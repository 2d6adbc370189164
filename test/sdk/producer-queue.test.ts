/**
 * The producer SDK with a long queue of calls: an application that publishes
 * faster than maxInFlight calls are answered, or while the broker is out of
 * reach, queues them in the producer. Its CPU time must grow with their
 * number, not its square. Serial, and alone in this file, so that the
 * process's CPU time is these calls' (and their stand-in broker's).
 */
import test, { type ExecutionContext } from 'ava'
import { createServer, type AddressInfo } from 'node:net'
import { encodeBulk, isFramingError, RespDecoder } from '../../src/producer/resp.js'
import { Producer, SDK_ERRORS, SnapperError } from '../../src/sdk/producer/index.js'

const CALLS = 200_000
/** On a quiet machine: 4 s with a linear queue, 30 s with an array's shift() and splice(). */
const MAX_CPU_MS = 12_000

/** A loopback stand-in for a broker: `answer` each connection's frames as they come, or never. */
async function standIn(
  t: ExecutionContext,
  isAnswering: boolean,
): Promise<{ port: number; rooms: string[] }> {
  const rooms: string[] = []
  const broker = createServer(socket => {
    const decoder = new RespDecoder(1 << 22)
    socket.on('data', chunk => {
      if (!isAnswering) return
      decoder.push(chunk)
      let answers = ''
      for (
        let frame = decoder.next();
        frame !== undefined && !isFramingError(frame);
        frame = decoder.next()
      ) {
        const { id, method, params } = JSON.parse(frame.toString('utf8')) as {
          id: unknown
          method: string
          params: string[]
        }
        if (method === 'publish') rooms.push(params[0]!)
        answers += encodeBulk(JSON.stringify({ jsonrpc: '2.0', id, result: method === 'auth' ? 'OK' : 1 }))
      }
      socket.write(answers)
    })
  })
  await new Promise<void>(resolve => broker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => broker.close())
  return { port: (broker.address() as AddressInfo).port, rooms }
}

const cpuMsSince = (start: NodeJS.CpuUsage): number => {
  const { user, system } = process.cpuUsage(start)
  return (user + system) / 1000
}

test.serial(
  `${CALLS} calls past maxInFlight are each stored once, in order, in CPU time linear in their number`,
  async t => {
    const { port, rooms } = await standIn(t, true)
    const producer = new Producer({ port, token: 'any', id: 'p' })
    t.teardown(() => producer.close())
    await producer.connect()
    const start = process.cpuUsage()
    const calls: Promise<number>[] = []
    for (let i = 0; i < CALLS; i++) calls.push(producer.publish(`room${i}`, 'm'))
    t.is(producer.pending.waiting, CALLS - 1024, 'the rest wait for a slot')
    const answers = await Promise.all(calls)
    const cpuMs = cpuMsSince(start)
    t.true(
      answers.every(answer => answer === 1),
      'every call stored',
    )
    t.is(rooms.length, CALLS)
    t.true(
      rooms.every((room, i) => room === `room${i}`),
      'in the order made',
    )
    t.true(cpuMs < MAX_CPU_MS, `${Math.round(cpuMs)} ms of CPU`)
    t.log(`${Math.round(cpuMs)} ms of CPU for ${CALLS} calls`)
  },
)

test.serial(
  `${CALLS} calls to a broker that never answers each time out, in CPU time linear in their number`,
  async t => {
    const { port } = await standIn(t, false) // not even the auth call: every call waits for a slot
    const producer = new Producer({ port, token: 'any', id: 'p', requestTimeoutMs: 1000 })
    t.teardown(() => producer.close())
    const start = process.cpuUsage()
    const calls: Promise<unknown>[] = []
    for (let i = 0; i < CALLS; i++)
      calls.push(producer.publish(`room${i}`, 'm').catch((error: unknown) => error))
    const errors = await Promise.all(calls)
    const cpuMs = cpuMsSince(start)
    t.true(
      errors.every(error => error instanceof SnapperError && error.code === SDK_ERRORS.TIMEOUT),
      'every call timed out',
    )
    t.deepEqual(producer.pending, { inFlight: 0, waiting: 0 })
    t.true(cpuMs < MAX_CPU_MS, `${Math.round(cpuMs)} ms of CPU`)
    t.log(`${Math.round(cpuMs)} ms of CPU for ${CALLS} calls`)
  },
)
