/**
 * RoomLog's appends on both topologies: what is asked for in one turn of the
 * event loop goes as one script call per hash slot (one call on one Redis),
 * every room keeps its order, a log read ends its calls where the live
 * announcements ended, and one broken room fails only its own publishes.
 */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import test, { type ExecutionContext } from 'ava'
import type { Cluster, Redis } from 'ioredis'
import { decodeAnnouncement } from '../../src/broker/control.js'
import type { BrokerCore } from '../../src/broker/core.js'
import { RoomLog, type RoomLogOptions } from '../../src/broker/room-log.js'
import { silentLogger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { LUA_DIR } from '../../src/redis/scripts.js'
import { slotOf } from '../../src/redis/slot.js'
import { eventually } from '../helpers/eventually.js'
import { startTestNode } from '../helpers/broker.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'

const redis = redisPerFile(test)

for (const topology of TOPOLOGIES) {
  test(`${topology}: one turn's appends to many rooms are one call per slot, each room in order`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    const { log, keys } = core
    const rooms = Array.from({ length: 20 }, (_, i) => `room-${i}`)
    const before = log.appendCalls
    await Promise.all([
      log.appendAll(new Map(rooms.map(room => [room, [`${room} a`, `${room} b`]]))),
      log.appendTracked('room-0', 'room-0 tracked', 'nonce0'),
      log.appendAll(new Map([['room-0', ['room-0 c']]])),
      log.appendAll(new Map([['room-1', ['room-1 c']]])),
    ])
    const slots = new Set(rooms.map(room => slotOf(keys.room(room).log)))
    t.is(log.appendCalls - before, topology === 'cluster' ? slots.size : 1)
    const messagesOf = async (room: string) =>
      (await log.read(room, { ms: 0, seq: 0 }, 100)).map(entry => [entry.seq, entry.message, entry.track])
    t.deepEqual(await messagesOf('room-0'), [
      [1, 'room-0 a', undefined],
      [2, 'room-0 b', undefined],
      [3, 'room-0 tracked', 'nonce0'],
      [4, 'room-0 c', undefined],
    ])
    t.deepEqual(await messagesOf('room-1'), [
      [1, 'room-1 a', undefined],
      [2, 'room-1 b', undefined],
      [3, 'room-1 c', undefined],
    ])
    t.deepEqual(await messagesOf('room-19'), [
      [1, 'room-19 a', undefined],
      [2, 'room-19 b', undefined],
    ])
  })

  test(`${topology}: a batch over the chunk bound goes in several calls, in order`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    const messages = Array.from({ length: 600 }, (_, i) => String(i))
    const before = core.log.appendCalls
    await core.log.appendAll(new Map([['big', messages]]))
    t.is(core.log.appendCalls - before, 3) // 256 + 256 + 88
    const read = await core.log.read('big', { ms: 0, seq: 0 }, 1000, 0)
    t.deepEqual(
      read.map(entry => entry.message),
      messages,
    )
  })

  test(`${topology}: a publish of 200,000 messages joins the room's part of its turn, in order`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    // One frame of maxFrameBytes (1 MB) holds ~100,000 short messages, and a turn may already hold a
    // part of their room. Spread into that part as one call's arguments, 200,000 overflowed the stack.
    const messages = Array.from({ length: 200_000 }, (_, i) => String(i + 1))
    await Promise.all([
      core.log.appendAll(new Map([['big', ['0']]])),
      core.log.appendAll(new Map([['big', messages]])),
    ])
    // What the log keeps of them (its length bound): the newest, each its own seq, in order.
    const kept = await core.log.read('big', { ms: 0, seq: 0 }, 300_000, 0)
    t.true(kept.length > 0)
    t.deepEqual(kept.at(-1)?.seq, 200_001)
    t.true(
      kept.every(
        (entry, i) => entry.seq === 200_002 - kept.length + i && entry.message === String(entry.seq - 1),
      ),
    )
  })

  test(`${topology}: a log read marks a call's end exactly where each live announcement ended`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    const listener = createRedisClients(redis.target(topology), silentLogger)
    t.teardown(() => listener.quit())
    await listener.connect(5000)
    const rooms = ['a', 'b']
    const announcedEnds = new Map<string, number[]>(rooms.map(room => [core.keys.room(room).channel, []]))
    listener.pubsub.onMessage((channel, bytes) => {
      const { first, messages } = decodeAnnouncement(bytes)!
      announcedEnds.get(channel)?.push(first + messages.length - 1)
    })
    await Promise.all(rooms.map(room => listener.pubsub.subscribe(core.keys.room(room).channel)))
    const numbered = (room: string, count: number): string[] =>
      Array.from({ length: count }, (_, i) => `${room} ${i}`)
    // One turn: several producer batches to a room, a tracked message between them, one over the
    // chunk bound (split over calls); then a second turn.
    await Promise.all([
      core.log.appendAll(
        new Map([
          ['a', numbered('a', 3)],
          ['b', numbered('b', 1)],
        ]),
      ),
      core.log.appendAll(new Map([['a', numbered('a', 2)]])),
      core.log.appendTracked('a', 'a tracked', 'nonce-a'),
      core.log.appendAll(
        new Map([
          ['a', numbered('a', 300)],
          ['b', numbered('b', 2)],
        ]),
      ),
    ])
    await core.log.appendAll(new Map([['a', numbered('a', 1)]]))
    const total = { a: 307, b: 3 }
    await eventually(() =>
      rooms.every(
        room => announcedEnds.get(core.keys.room(room).channel)!.at(-1) === total[room as 'a' | 'b'],
      ),
    )
    for (const room of rooms) {
      const read = await core.log.read(room, { ms: 0, seq: 0 }, 1000, 0)
      t.is(read.length, total[room as 'a' | 'b'])
      const markedEnds = read.filter(entry => entry.isAnnouncementEnd).map(entry => entry.seq)
      t.deepEqual(markedEnds, announcedEnds.get(core.keys.room(room).channel), `room ${room}`)
    }
    // The tracked message is an announcement of its own, and so is what follows it.
    t.true(announcedEnds.get(core.keys.room('a').channel)!.length >= 4)
  })

  test(`${topology}: a room whose keys are broken fails its own publishes, not those of the same turn`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    await core.redis.commands.set(core.keys.room('broken').log, 'not a stream')
    const [broken, fine] = await Promise.allSettled([
      core.log.appendAll(new Map([['broken', ['x']]])),
      core.log.appendAll(new Map([['fine', ['y']]])),
    ])
    t.is(broken.status, 'rejected')
    t.regex(String((broken as PromiseRejectedResult).reason), /WRONGTYPE/)
    t.is(fine.status, 'fulfilled')
    t.deepEqual(
      (await core.log.read('fine', { ms: 0, seq: 0 }, 10)).map(entry => entry.message),
      ['y'],
    )
  })

  test(`${topology}: a room with no messages settles at once and costs no call`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    const before = core.log.appendCalls
    await core.log.appendAll(new Map([['empty', []]]))
    t.is(core.log.appendCalls, before)
    await core.log.appendAll(
      new Map([
        ['empty', []],
        ['full', ['z']],
      ]),
    )
    t.is(core.log.appendCalls, before + 1)
    t.deepEqual(await core.log.read('empty', { ms: 0, seq: 0 }, 10), [])
    t.deepEqual(
      (await core.log.read('full', { ms: 0, seq: 0 }, 10)).map(entry => entry.message),
      ['z'],
    )
  })

  // A TypeError is a bug, which sending again would not cure (on a Cluster, other errors are sent again until stored).
  test(`${topology}: a client that throws a TypeError while a turn is sent fails every publish of that turn, and the next turn is stored`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    let throwing = true
    const commands = new Proxy(core.redis.commands, {
      get(target, name, receiver) {
        const value: unknown = Reflect.get(target, name, receiver)
        if (name !== 'sendCommand' || typeof value !== 'function') return value // how the appends are sent
        return (...args: unknown[]) => {
          if (throwing) throw new TypeError('client broke while sending')
          return (value as (...args: unknown[]) => unknown).apply(target, args)
        }
      },
    })
    const log = logWith(core, {}, commands)
    const turn = await Promise.allSettled([
      log.appendAll(new Map([['a', ['1']]])),
      log.appendTracked('b', '2', 'nonce-b'),
    ])
    t.deepEqual(
      turn.map(outcome => (outcome.status === 'rejected' ? String(outcome.reason) : outcome.status)),
      ['TypeError: client broke while sending', 'TypeError: client broke while sending'],
    )
    throwing = false
    await log.appendAll(new Map([['a', ['3']]]))
    t.deepEqual(
      (await log.read('a', { ms: 0, seq: 0 }, 10)).map(entry => entry.message),
      ['3'],
    )
  })

  test(`${topology}: one turn's reads of many rooms are one call per slot and per readMaxRoomsPerCall rooms, each room its own messages`, async t => {
    const { core, config } = await startTestNode(t, redis.target(topology))
    const rooms = Array.from({ length: 600 }, (_, i) => `read-${i}`)
    await core.log.appendAll(new Map(rooms.map(room => [room, [`${room} a`, `${room} b`]])))
    const log = logWith(core, { readMaxRoomsPerCall: 256 })
    const calls = await scriptCallsSeen(t, core, config.redisPrefix)
    const reads = await Promise.all(rooms.map(room => log.read(room, { ms: 0, seq: 0 }, 10)))
    t.deepEqual(
      reads.map(entries => entries.map(entry => entry.message)),
      rooms.map(room => [`${room} a`, `${room} b`]),
    )
    const slots = new Set(rooms.map(room => slotOf(core.keys.room(room).log)))
    const expected = topology === 'cluster' ? slots.size : 3 // one Redis: 256 + 256 + 88
    await eventually(() => calls.count >= expected, {
      what: `${expected} script calls`,
      timeoutMs: 2000,
    }).catch(() => {})
    t.is(calls.count, expected)
  })

  test(`${topology}: the rooms a read call leaves unread (its bytes reached readMaxBytes) are read in the next`, async t => {
    const { core, config } = await startTestNode(t, redis.target(topology))
    const rooms = ['a', 'b', 'c'].map(room => `bytes-${room}`)
    await core.log.appendAll(new Map(rooms.map(room => [room, ['xxxx', 'yyyy']])))
    const log = logWith(core, { readMaxBytes: 4 })
    const calls = await scriptCallsSeen(t, core, config.redisPrefix)
    const reads = await Promise.all(rooms.map(room => log.read(room, { ms: 0, seq: 0 }, 10)))
    t.deepEqual(
      reads.map(entries => entries.map(entry => entry.message)),
      [['xxxx'], ['xxxx'], ['xxxx']],
    )
    await eventually(() => calls.count >= 3, { what: '3 script calls', timeoutMs: 2000 }).catch(() => {})
    t.is(calls.count, 3)
  })

  // Serial (AVA runs these before the others): it empties the script cache other tests' calls need.
  test.serial(
    `${topology}: a read call answered NOSCRIPT (the script cache emptied) is sent again at once`,
    async t => {
      const { core } = await startTestNode(t, redis.target(topology))
      await core.log.appendAll(new Map([['flushed', ['m']]]))
      t.deepEqual(
        (await core.log.read('flushed', { ms: 0, seq: 0 }, 10)).map(entry => entry.message),
        ['m'],
      )
      await Promise.all(mastersOf(core).map(master => master.script('FLUSH')))
      t.deepEqual(
        (await core.log.read('flushed', { ms: 0, seq: 0 }, 10)).map(entry => entry.message),
        ['m'],
      )
    },
  )

  test(`${topology}: a room whose keys are broken fails its own reads, not those of the same turn`, async t => {
    const { core } = await startTestNode(t, redis.target(topology))
    await core.redis.commands.set(core.keys.room('broken').log, 'not a stream')
    await core.log.appendAll(new Map([['fine', ['y']]]))
    const [broken, fine] = await Promise.allSettled([
      core.log.read('broken', { ms: 0, seq: 0 }, 10),
      core.log.read('fine', { ms: 0, seq: 0 }, 10),
    ])
    t.is(broken.status, 'rejected')
    t.regex(String((broken as PromiseRejectedResult).reason), /WRONGTYPE/)
    t.deepEqual(fine.status === 'fulfilled' ? fine.value.map(entry => entry.message) : fine.reason, ['y'])
  })
}

/** A RoomLog of the node's keys with these read bounds, on its Redis client or `commands`. */
function logWith(
  core: BrokerCore,
  bounds: Partial<Pick<RoomLogOptions, 'readMaxBytes' | 'readMaxRoomsPerCall'>>,
  commands = core.redis.commands,
): RoomLog {
  return new RoomLog(commands, core.keys, {
    maxLen: 100,
    maxBytes: 1 << 20,
    readMaxBytes: 1 << 20,
    readMaxRoomsPerCall: 256,
    ttlSec: 3600,
    publishCommand: core.redis.pubsub.publishCommand,
    resendsInOrder: core.redis.resendsInOrder,
    isPassing: err => core.redis.isPassing(err),
    isCluster: core.redis.isCluster,
    ...bounds,
  })
}

/** room_read-2n.lua as Redis names it: EVALSHA by its digest, EVAL by its first line. */
const READ_LUA = readFileSync(new URL('room_read-2n.lua', LUA_DIR), 'utf8')
const READ_SHA = createHash('sha1').update(READ_LUA).digest('hex')

/**
 * Calls of room_read-2n.lua with a key of `prefix` that Redis runs from now
 * on, as MONITOR shows them on every master (a socket of its own: what the
 * room log costs Redis, seen from Redis; the node's periodic scripts left out).
 */
async function scriptCallsSeen(
  t: ExecutionContext,
  core: BrokerCore,
  prefix: string,
): Promise<{ count: number }> {
  const seen = { count: 0 }
  for (const { options } of mastersOf(core)) {
    const socket = connect(options.port!, options.host)
    t.teardown(() => void socket.destroy())
    socket.write('MONITOR\r\n')
    await once(socket, 'data') // +OK
    const lines = createInterface({ input: socket })
    lines.on('line', line => {
      const isRead = line.includes(`"evalsha" "${READ_SHA}"`) || line.includes('"eval" "-- room_read-2n.lua')
      if (isRead && line.includes(`"${prefix}`)) seen.count++
    })
  }
  return seen
}

/** The node's Redis masters: its one Redis, or the Cluster's masters. */
function mastersOf(core: BrokerCore): Redis[] {
  const commands = core.redis.commands
  return core.redis.isCluster ? (commands as Cluster).nodes('master') : [commands as Redis]
}
