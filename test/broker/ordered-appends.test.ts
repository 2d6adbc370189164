/**
 * OrderedAppends against the real append script: what a failover does to
 * the calls of one room (one sent again after a later one, a reply lost
 * after the call ran, a call that fails for good), played on one Redis by
 * a `send` that holds, repeats or fails an attempt. The log holds each
 * message once, in the order the calls were made.
 */
import test from 'ava'
import { OrderedAppends, type AppendStatus } from '../../src/broker/ordered-appends.js'
import { Keys } from '../../src/redis/keys.js'
import { defineScripts, type Commands } from '../../src/redis/scripts.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { pause } from '../helpers/eventually.js'

let server: RedisServer
let redis: Commands
test.before(async () => {
  server = await startRedis()
  redis = defineScripts(server.client())
})
test.after.always(() => server?.stop())

/** What a dropped connection looks like to the caller: a failure that passes. */
class LostReply extends Error {}

/** A room, and the one script call that appends `message` to it as call `call` of writer `w`. */
function roomOf(name: string) {
  const keys = new Keys(uniquePrefix())
  const { log, head, channel } = keys.room(name)
  const track = keys.track(name, '')
  const run = (call: number, after: number, message: string): Promise<AppendStatus> =>
    redis
      .roomAppend(4, log, head, channel, track, 100, 1 << 20, 60, 'PUBLISH', 'w', call, after, '', 1, message)
      .then(reply => (reply[0] === -1 ? -1 : (reply[3] as AppendStatus)))
  const logged = async (): Promise<string[]> =>
    (await redis.xrange(log, '-', '+')).map(([, fields]) => fields[1]!)
  return { run, logged }
}

const ordered = () => new OrderedAppends(err => err instanceof LostReply)

test('a call that overtakes the one before it is refused, then stored after it', async t => {
  const appends = ordered()
  const { run, logged } = roomOf('overtaken')
  const sends: string[] = []
  const first = appends.append(['r'], 1, async after => {
    sends.push(`1 after ${after('r')}`)
    if (sends.length === 1) await pause(150) // held in a retry queue while call 2 goes
    return run(1, after('r'), 'a')
  })
  const second = appends.append(['r'], 2, after => {
    sends.push(`2 after ${after('r')}`)
    return run(2, after('r'), 'b')
  })
  await Promise.all([first, second])
  t.deepEqual(await logged(), ['a', 'b'])
  // Call 2 named call 1 while that one was on its way, and went again once it was stored.
  t.deepEqual(sends, ['1 after 0', '2 after 1', '2 after 0'])
  t.is(appends.pendingRooms, 0)
})

test('a call whose reply was lost after it ran is sent again and stored once, the next one after it', async t => {
  const appends = ordered()
  const { run, logged } = roomOf('lost-reply')
  let attempts = 0
  const first = appends.append(['r'], 1, async after => {
    const stored = await run(1, after('r'), 'a')
    if (++attempts === 1) throw new LostReply('Connection is closed.')
    return stored
  })
  const second = appends.append(['r'], 2, after => run(2, after('r'), 'b'))
  await Promise.all([first, second])
  t.is(attempts, 2)
  t.deepEqual(await logged(), ['a', 'b'])
})

test('a call that fails for good rejects; the calls after it are stored', async t => {
  const appends = ordered()
  const { run, logged } = roomOf('failed')
  const first = appends.append(['r'], 1, () => Promise.reject(new Error('OOM command not allowed')))
  const second = appends.append(['r'], 2, after => run(2, after('r'), 'b'))
  await t.throwsAsync(first, { message: /OOM/ })
  await second
  t.deepEqual(await logged(), ['b'])
  t.is(appends.pendingRooms, 0)
})

test('a call that throws as it is made fails at once, is not made again, and the calls after it are stored', async t => {
  const appends = ordered()
  const { run, logged } = roomOf('unmade')
  let attempts = 0
  const first = appends.append(['r'], 1, () => {
    attempts++
    throw new LostReply('thrown before anything was sent') // a failure that would pass, were it a reply
  })
  const second = appends.append(['r'], 2, after => run(2, after('r'), 'b'))
  await t.throwsAsync(first, { message: /before anything was sent/ })
  await second
  await pause(250) // past two retry delays: nothing makes it again
  t.is(attempts, 1)
  t.deepEqual(await logged(), ['b'])
  t.is(appends.pendingRooms, 0)
})

test('rooms do not wait for each other', async t => {
  const appends = ordered()
  const one = roomOf('one')
  const two = roomOf('two')
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const first = appends.append(['one'], 1, async after => {
    await held
    return one.run(1, after('one'), 'a')
  })
  await appends.append(['two'], 2, after => two.run(2, after('two'), 'x'))
  t.deepEqual(await two.logged(), ['x'])
  release()
  await first
  t.deepEqual(await one.logged(), ['a'])
})

test('a call over two rooms follows the call before it in each, and waits for both', async t => {
  const appends = ordered()
  const keys = new Keys(uniquePrefix())
  const partOf = (room: string) => {
    const { log, head, channel } = keys.room(room)
    return [log, head, channel, keys.track(room, '')]
  }
  const logged = async (room: string): Promise<string[]> =>
    (await redis.xrange(keys.room(room).log, '-', '+')).map(([, fields]) => fields[1]!)
  /** Call `call` of writer w: `message` to each of `rooms`, each after the call `after` names there. */
  const run = (call: number, rooms: string[], after: (room: string) => number, message: string) =>
    redis
      .roomAppend(
        4 * rooms.length,
        ...rooms.flatMap(partOf),
        ...[100, 1 << 20, 60, 'PUBLISH', 'w', call],
        ...rooms.flatMap(room => [after(room), '', 1, `${message} in ${room}`]),
      )
      .then(reply => (reply[0] === -1 ? -1 : 1) as AppendStatus)
  const sends: string[] = []
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const first = appends.append(['a'], 1, async after => {
    sends.push(`1 after a:${after('a')}`)
    await held // in a retry queue while the others go
    return run(1, ['a'], after, 'one')
  })
  await appends.append(['b'], 2, after => run(2, ['b'], after, 'two'))
  const third = appends.append(['a', 'b'], 3, after => {
    sends.push(`3 after a:${after('a')} b:${after('b')}`)
    return run(3, ['a', 'b'], after, 'three')
  })
  await pause(150)
  t.deepEqual(await logged('a'), [], 'refused while call 1 is not stored')
  release()
  await Promise.all([first, third])
  t.deepEqual(await logged('a'), ['one in a', 'three in a'])
  t.deepEqual(await logged('b'), ['two in b', 'three in b'])
  t.is(sends[0], '1 after a:0')
  t.is(sends[1], '3 after a:1 b:0', 'call 2 was settled: only room a has a call to follow')
  t.is(appends.pendingRooms, 0)
})
