import test from 'ava'
import { Redis } from 'ioredis'
import { decodeAnnouncement } from '../../src/broker/control.js'
import { consumerIdOf } from '../../src/auth/token.js'
import { Keys, userRoom } from '../../src/redis/keys.js'
import { defineScripts, type Commands } from '../../src/redis/scripts.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { eventually } from '../helpers/eventually.js'

let server: RedisServer
let redis: Commands

test.before(async () => {
  server = await startRedis()
  redis = defineScripts(server.client())
})
test.after.always(() => server?.stop())

const keysFor = () => new Keys(uniquePrefix())

/**
 * room_append-4n.lua with one part (`after` 0 unless given): `[ms, first,
 * status]`, or `[0, 0, -1]` for a refused call.
 */
const appendOne = async (
  roomKeys: string[],
  common: (string | number)[],
  nonce: string,
  messages: string[],
  after = 0,
): Promise<[number, number, number]> => {
  const reply = await redis.roomAppend(4, ...roomKeys, ...common, after, nonce, messages.length, ...messages)
  return reply[0] === -1 ? [0, 0, -1] : [Number(reply[1]), Number(reply[2]), Number(reply[3])]
}
/** A room log byte bound that these tests never reach. */
const MB = 1 << 20
/**
 * A room's keys, and room_append on them: `append` plain and unnumbered,
 * `appendAs` numbered by a writer, `appendAfter` also naming the call it must
 * follow (100 messages, `maxBytes` of them, kept for 60 s either way).
 */
const roomKeysFor = (room: string, maxBytes = MB) => {
  const keys = keysFor()
  const { log, head, channel } = keys.room(room)
  const track = keys.track(room, '') // what a plain append passes, and never touches
  const appendAfter = (writer: string, call: number, after: number, ...messages: string[]) =>
    appendOne([log, head, channel, track], [100, maxBytes, 60, 'PUBLISH', writer, call], '', messages, after)
  const appendAs = (writer: string, call: number, ...messages: string[]) =>
    appendAfter(writer, call, 0, ...messages)
  return {
    log,
    head,
    channel,
    track,
    appendAs,
    appendAfter,
    append: (...messages: string[]) => appendAs('', 0, ...messages),
  }
}

test('room_append gives contiguous seqs and <ms>-<seq> ids across calls', async t => {
  const { log, head, append } = roomKeysFor('r')
  const [ms1, first1] = await append('a', 'b')
  const [ms2, first2] = await append('c')
  t.is(first1, 1)
  t.is(first2, 3)
  t.true(ms2 >= ms1)
  const entries = await redis.xrange(log, '-', '+')
  t.deepEqual(
    entries.map(([id, fields]) => [id.split('-')[1], fields]),
    [
      ['1', ['m', 'a']],
      ['2', ['m', 'b', 'e', '1']],
      ['3', ['m', 'c', 'e', '1']],
    ],
    'the last message of each call is marked',
  )
  t.is(entries[0]![0], `${ms1}-1`)
  t.like(await redis.hgetall(head), { s: '3', t: String(ms2), b: '3', o: String(ms1) })
  t.true((await redis.ttl(log)) > 0 && (await redis.ttl(head)) > 0)
})

test('room_append: several rooms in one call, each part with its own seqs, announcement and end mark; a room twice goes on', async t => {
  const keys = keysFor()
  const partKeys = (room: string) => {
    const { log, head, channel } = keys.room(room)
    return [log, head, channel, keys.track(room, '')]
  }
  const subscriber = server.client()
  await subscriber.psubscribe(`${keys.prefix}:*`)
  const announced: unknown[] = []
  subscriber.on('pmessageBuffer', (_, channel: Buffer, bytes: Buffer) =>
    announced.push([channel.toString(), decodeAnnouncement(bytes)]),
  )
  await redis.roomAppend(4, ...partKeys('a'), 100, MB, 60, 'PUBLISH', '', 0, 0, '', 1, 'a1')
  const reply = await redis.roomAppend(
    12,
    ...partKeys('a'),
    ...partKeys('b'),
    ...partKeys('a'),
    ...[100, MB, 60, 'PUBLISH', 'w', 1],
    ...[0, '', 2, 'a2', 'a3'],
    ...[0, '', 1, 'b1'],
    ...[0, '', 1, 'a4'],
  )
  const ms = reply[1]!
  t.deepEqual(reply, [1, ms, 2, 1, ms, 1, 1, ms, 4, 1])
  // Each part's last entry is marked (e), as its announcement ends there.
  const entriesOf = async (room: string) =>
    (await redis.xrange(keys.room(room).log, '-', '+')).map(([id, fields]) => [id.split('-')[1], ...fields])
  t.deepEqual(await entriesOf('a'), [
    ['1', 'm', 'a1', 'e', '1'],
    ['2', 'm', 'a2'],
    ['3', 'm', 'a3', 'e', '1'],
    ['4', 'm', 'a4', 'e', '1'],
  ])
  t.deepEqual(await entriesOf('b'), [['1', 'm', 'b1', 'e', '1']])
  await eventually(() => announced.length === 4)
  t.deepEqual(announced.slice(1), [
    [keys.room('a').channel, { ms, first: 2, messages: ['a2', 'a3'], track: undefined }],
    [keys.room('b').channel, { ms, first: 1, messages: ['b1'], track: undefined }],
    [keys.room('a').channel, { ms, first: 4, messages: ['a4'], track: undefined }],
  ])
  subscriber.disconnect()
})

test('room_append pushes the expiry of log and head only when it is less than the ttl ahead', async t => {
  const { log, head, append } = roomKeysFor('expiry')
  await append('a')
  const life = 60 + Math.ceil(60 / 8)
  t.true((await redis.ttl(log)) > 60 && (await redis.ttl(head)) <= life, 'ttl + ttl / 8 ahead')
  await Promise.all([redis.expire(log, 65), redis.expire(head, 65)])
  await append('b')
  t.true((await redis.ttl(log)) <= 65, 'still more than the ttl ahead: not pushed')
  await Promise.all([redis.expire(log, 50), redis.expire(head, 50)])
  await redis.hset(head, 'x', Date.now() + 50_000)
  await append('c')
  t.true((await redis.ttl(log)) > 60 && (await redis.ttl(head)) > 60, 'less than the ttl ahead: pushed')
})

test('room_append keeps at most max length messages', async t => {
  const { log, head, channel, track } = roomKeysFor('bounded')
  for (let i = 0; i < 5; i++)
    await appendOne([log, head, channel, track], [3, MB, 60, 'PUBLISH', '', 0], '', [`m${i}a`, `m${i}b`])
  const entries = await redis.xrange(log, '-', '+')
  t.deepEqual(
    entries.map(([id]) => Number(id.split('-')[1])),
    [8, 9, 10],
  )
})

test('room_append keeps at most max bytes of messages (UTF-8), dropping the oldest first', async t => {
  const { log, head, append } = roomKeysFor('bytes', 10)
  const kept = async () => (await redis.xrange(log, '-', '+')).map(([, fields]) => fields[1])
  await append('aaaa', 'bbbb')
  t.deepEqual(await kept(), ['aaaa', 'bbbb'])
  await append('cccc')
  t.deepEqual(await kept(), ['bbbb', 'cccc'])
  t.is(await redis.hget(head, 'b'), '8')
  await append('éé', 'ddd') // é is 2 bytes: 8 + 4 + 3 = 15, so bbbb and cccc go
  t.deepEqual(await kept(), ['éé', 'ddd'])
  t.is(await redis.hget(head, 'b'), '7')
  await append('eeeeeeeeee') // 10 bytes: everything before it goes
  t.deepEqual(await kept(), ['eeeeeeeeee'])
  t.deepEqual(await redis.hmget(head, 's', 'b'), ['6', '10'])
})

test('room_append drops the messages older than the ttl, exactly, and counts their bytes', async t => {
  const { log, head, append } = roomKeysFor('age')
  const old = Date.now() - 120_000
  await redis.xadd(log, `${old}-1`, 'm', 'old one')
  await redis.xadd(log, `${old}-2`, 'm', 'old two')
  await redis.hset(head, 's', 2, 't', old, 'b', 14)
  await append('new')
  t.deepEqual(
    (await redis.xrange(log, '-', '+')).map(([, fields]) => fields[1]),
    ['new'],
  )
  t.is(await redis.hget(head, 'b'), '3')
})

test('room_append on a log without a byte count (an older version wrote it) counts its bytes first', async t => {
  const { log, head, channel, track } = roomKeysFor('uncounted')
  const now = Date.now()
  for (let seq = 1; seq <= 600; seq++) await redis.xadd(log, `${now}-${seq}`, 'm', 'x'.repeat(10))
  await redis.hset(head, 's', 600, 't', now)
  await appendOne([log, head, channel, track], [1000, 5000, 60, 'PUBLISH', '', 0], '', ['y'.repeat(10)])
  t.is(await redis.xlen(log), 500)
  t.is(await redis.hget(head, 'b'), '5000')
})

test('room_append never lets ids go back when the clock does', async t => {
  const { head, append } = roomKeysFor('clock')
  const future = Date.now() + 3_600_000
  await redis.hset(head, 's', 7, 't', future)
  const [ms, first] = await append('x')
  t.is(ms, future)
  t.is(first, 8)
})

test('room_append announces the batch on the room channel', async t => {
  const { channel, append } = roomKeysFor('announced')
  const subscriber = server.client()
  await subscriber.subscribe(channel)
  const received = new Promise<unknown>(resolve =>
    subscriber.on('messageBuffer', (_, bytes: Buffer) => resolve(decodeAnnouncement(bytes))),
  )
  const [ms, first] = await append('é😀', '{"e":1}')
  t.deepEqual(await received, { ms, first, messages: ['é😀', '{"e":1}'], track: undefined })
})

test('room_append stores a numbered call once: a call sent again after a lost reply appends and announces nothing', async t => {
  const { log, head, channel, appendAs } = roomKeysFor('resent')
  const subscriber = server.client()
  await subscriber.subscribe(channel)
  const announced: unknown[] = []
  subscriber.on('messageBuffer', (_, bytes: Buffer) => announced.push(decodeAnnouncement(bytes)))
  const [ms, first, stored] = await appendAs('w1', 1, 'a', 'b')
  t.deepEqual([first, stored], [1, 1])
  t.deepEqual(await appendAs('w1', 1, 'a', 'b'), [ms, 1, 0])
  // Calls of one writer run in their order: a lower number was stored before the higher one.
  await appendAs('w1', 2, 'c')
  t.is((await appendAs('w1', 1, 'a', 'b'))[2], 0)
  // Another writer numbers its own calls.
  t.is((await appendAs('w2', 1, 'd'))[2], 1)
  t.deepEqual(
    (await redis.xrange(log, '-', '+')).map(([, fields]) => fields[1]),
    ['a', 'b', 'c', 'd'],
  )
  t.is((await redis.hmget(head, 's'))[0], '4')
  // Announcements arrive in order: once d's is here, every earlier one is too.
  const messagesOf = (a: unknown) => (a as { messages: string[] }).messages
  await eventually(() => announced.some(a => messagesOf(a).includes('d')), { what: "d's announcement" })
  t.deepEqual(announced.map(messagesOf), [['a', 'b'], ['c'], ['d']])
  subscriber.disconnect()
})

test('room_append: a call naming the call it must follow is refused, storing and announcing nothing, until that one is stored', async t => {
  const { log, head, channel, appendAfter } = roomKeysFor('after')
  const subscriber = server.client()
  await subscriber.subscribe(channel)
  const announced: (readonly string[] | undefined)[] = []
  subscriber.on('messageBuffer', (_, bytes: Buffer) => announced.push(decodeAnnouncement(bytes)?.messages))
  // Call 2 arrives first (a retry overtook call 1): refused, and so is call 3 behind it.
  t.deepEqual(await appendAfter('w', 2, 1, 'b'), [0, 0, -1])
  t.deepEqual(await appendAfter('w', 3, 2, 'c'), [0, 0, -1])
  t.is(await redis.exists(log, head), 0)
  t.is((await appendAfter('w', 1, 0, 'a'))[2], 1)
  t.is((await appendAfter('w', 2, 1, 'b'))[2], 1)
  t.is((await appendAfter('w', 3, 2, 'c'))[2], 1)
  // Call 4 never ran (its reply lost with the master that had it): call 5 waits for it...
  t.deepEqual(await appendAfter('w', 5, 4, 'e'), [0, 0, -1])
  // ...unless the writer knows call 4 settled (stored, or failed for good): then it goes.
  t.is((await appendAfter('w', 5, 0, 'e'))[2], 1)
  // Another writer's calls do not count.
  t.deepEqual(await appendAfter('v', 2, 1, 'x'), [0, 0, -1])
  t.deepEqual(
    (await redis.xrange(log, '-', '+')).map(([id, fields]) => `${id.split('-')[1]}:${fields[1]}`),
    ['1:a', '2:b', '3:c', '4:e'],
  )
  await eventually(() => announced.length === 4, { what: 'four announcements' })
  t.deepEqual(announced, [['a'], ['b'], ['c'], ['e']])
  subscriber.disconnect()
})

test('room_append: unnumbered calls (writer "") are all stored and leave no writer field', async t => {
  const { log, head, append } = roomKeysFor('unnumbered')
  await append('a')
  await append('a')
  t.is(await redis.xlen(log), 2)
  t.deepEqual(Object.keys(await redis.hgetall(head)).sort(), ['b', 'i', 'o', 's', 't', 'x'])
})

test('room_append: a new writer drops the fields of writers silent for longer than the ttl', async t => {
  const { log, head, appendAs } = roomKeysFor('writers')
  const old = Date.now() - 120_000
  for (let i = 0; i < 20; i++) await redis.hset(head, `w:old${i}`, `5 ${old} 1`)
  await redis.hset(head, 'w:recent', `9 ${Date.now()} 1`, 's', 0, 't', old)
  await appendAs('new', 1, 'x')
  t.deepEqual(Object.keys(await redis.hgetall(head)).sort(), [
    'b',
    'i',
    'o',
    's',
    't',
    'w:new',
    'w:recent',
    'x',
  ])
  // The survivor still recognises its calls.
  t.is((await appendAs('recent', 9, 'y'))[2], 0)
  t.is(await redis.xlen(log), 1)
})

test('progress_write writes the pairs of several rooms, 600 pairs in one room included, each hash with its ttl', async t => {
  const keys = keysFor()
  const [a, b] = [keys.room('a').progress, keys.room('b').progress]
  const many = Array.from({ length: 600 }, (_, i) => [`c${i}`, `1-${i}`]).flat()
  t.is(await redis.progressWrite(2, a, b, 60, 1, 'c1', '5-1', 600, ...many), 2)
  t.deepEqual(await redis.hgetall(a), { c1: '5-1' })
  t.is(await redis.hlen(b), 600)
  t.is(await redis.hget(b, 'c599'), '1-599')
  t.true((await redis.ttl(a)) > 0 && (await redis.ttl(b)) > 0)
})

test('progress_write never moves a cursor back: the stale cursors of a node that froze and woke leave the newer ones', async t => {
  const keys = keysFor()
  const room = keys.room('r').progress
  t.is(await redis.progressWrite(1, room, 60, 3, 'taken', '20-5', 'same', '7-7', 'ms', '9-1'), 1)
  // The frozen node wakes: older cursors (by seq, by ms), an equal one, and a consumer new to the room.
  t.is(
    await redis.progressWrite(1, room, 60, 4, 'taken', '20-4', 'same', '7-7', 'ms', '8-9', 'new', '1-1'),
    1,
  )
  t.deepEqual(await redis.hgetall(room), { taken: '20-5', same: '7-7', ms: '9-1', new: '1-1' })
  // Newer ones move forward, by seq and by ms (a number, not text: 10 after 9).
  t.is(await redis.progressWrite(1, room, 60, 2, 'taken', '20-6', 'ms', '10-0'), 1)
  t.deepEqual(await redis.hgetall(room), { taken: '20-6', same: '7-7', ms: '10-0', new: '1-1' })
  // 1,200 pairs in one room, past the 500 a HMGET takes at a time: each compared with its own.
  const many = (seq: number): string[] =>
    Array.from({ length: 1200 }, (_, i) => [`c${i}`, `${i}-${seq}`]).flat()
  await redis.progressWrite(1, room, 60, 1200, ...many(5))
  await redis.progressWrite(1, room, 60, 1200, ...many(3))
  t.is(await redis.hget(room, 'c1199'), '1199-5')
  t.is(await redis.hget(room, 'c0'), '0-5')
})

/** One room's read through room_read-2n.lua (a call of one room, no bound on the call's bytes). */
const readOne = async (
  log: string,
  head: string,
  cursor: string,
  count: number,
  ttlSec: number,
  maxBytes: number,
): Promise<(number | string)[]> => {
  const rooms = await redis.roomRead(2, log, head, ttlSec, 0, cursor, count, maxBytes)
  return rooms[0]!
}

test('room_read returns messages after a cursor, oldest first, at most count', async t => {
  const { log, head, append } = roomKeysFor('read')
  const [ms] = await append('a', 'b', 'c', 'd')
  // First the ms at which this incarnation of the log began (that of its seq 1), then whether the
  // read's bytes cut it short (0: no), then each entry: id, message, track nonce ('' untracked),
  // '1' on the last message of its append call.
  t.deepEqual(await readOne(log, head, '0-0', 10, 60, 0), [
    ms,
    0,
    `${ms}-1`,
    'a',
    '',
    '',
    `${ms}-2`,
    'b',
    '',
    '',
    `${ms}-3`,
    'c',
    '',
    '',
    `${ms}-4`,
    'd',
    '',
    '1',
  ])
  t.deepEqual(await readOne(log, head, `${ms}-2`, 1, 60, 0), [ms, 0, `${ms}-3`, 'c', '', ''])
  t.deepEqual(await readOne(log, head, `${ms}-4`, 10, 60, 0), [ms, 0])
})

test('room_read returns at most max bytes of messages, but always the first one', async t => {
  const { log, head, append } = roomKeysFor('read bytes')
  const [ms] = await append('aaaa', 'bbbb', 'cccc', ...Array.from({ length: 70 }, () => 'x'))
  const messagesOf = ([, , ...flat]: unknown[]) => flat.filter((_, i) => i % 4 === 1)
  t.deepEqual(messagesOf(await readOne(log, head, '0-0', 10, 60, 8)), ['aaaa', 'bbbb'])
  t.is((await readOne(log, head, '0-0', 10, 60, 8))[1], 1, 'cut short by its bytes: more to read')
  t.is((await readOne(log, head, `${ms}-3`, 100, 60, 0))[1], 0, 'the whole log: nothing more')
  t.is((await readOne(log, head, `${ms}-3`, 5, 60, 0))[1], 0, 'stopped by its count: not said')
  t.deepEqual(messagesOf(await readOne(log, head, '0-0', 10, 60, 9)), ['aaaa', 'bbbb'])
  t.deepEqual(messagesOf(await readOne(log, head, '0-0', 10, 60, 2)), ['aaaa'], 'one, however large')
  t.deepEqual(messagesOf(await readOne(log, head, `${ms}-1`, 10, 60, 0)), ['bbbb', 'cccc', ...'xxxxxxxx'])
  // Past the script's chunks of 32: count and bytes hold across them.
  t.is(messagesOf(await readOne(log, head, `${ms}-3`, 100, 60, 65)).length, 65)
  t.is(messagesOf(await readOne(log, head, `${ms}-3`, 69, 60, 0)).length, 69)
  t.is(messagesOf(await readOne(log, head, `${ms}-3`, 100, 60, 0)).length, 70)
})

test('room_read skips messages older than the ttl', async t => {
  const { log, head } = keysFor().room('aged')
  const old = Date.now() - 120_000
  await redis.xadd(log, `${old}-1`, 'm', 'old')
  await redis.xadd(log, `${Date.now()}-2`, 'm', 'new')
  const [since, , ...flat] = await readOne(log, head, '0-0', 10, 60, 0)
  t.is(since, 0, 'a log without a head (written by hand here): when it began is not known')
  t.deepEqual(
    flat.filter((_, i) => i % 4 === 1),
    ['new'],
  )
  const [, , ...older] = await readOne(log, head, `${old - 1}-0`, 10, 600, 0)
  t.deepEqual(
    older.filter((_, i) => i % 4 === 1),
    ['old', 'new'],
  )
})

test('room_read reads many rooms in one call, each after its own cursor, with its own count and bytes', async t => {
  const a = roomKeysFor('many a')
  const b = roomKeysFor('many b')
  const empty = keysFor().room('many empty')
  const [msA] = await a.append('a1', 'a2', 'a3')
  const [msB] = await b.append('b1', 'b2')
  const rooms = await redis.roomRead(
    6,
    ...[a.log, a.head, empty.log, empty.head, b.log, b.head],
    60,
    0,
    ...[`${msA}-1`, 10, 0],
    ...['0-0', 10, 0],
    ...['0-0', 1, 0],
  )
  t.deepEqual(rooms, [
    [msA, 0, `${msA}-2`, 'a2', '', '', `${msA}-3`, 'a3', '', '1'],
    [0, 0],
    [msB, 0, `${msB}-1`, 'b1', '', ''],
  ])
})

test('room_read stops after the room whose read reaches the bytes of the call: the rooms after it are not read', async t => {
  const rooms = ['bytes a', 'bytes b', 'bytes c'].map(room => roomKeysFor(room))
  for (const room of rooms) await room.append('xxxx', 'yyyy')
  const read = (callMaxBytes: number) =>
    redis.roomRead(
      6,
      ...rooms.flatMap(room => [room.log, room.head]),
      60,
      callMaxBytes,
      ...rooms.flatMap(() => ['0-0', 10, 0]),
    )
  t.is((await read(8)).length, 1, 'the first room alone reaches 8 bytes')
  t.is((await read(9)).length, 2)
  t.is((await read(1)).length, 1, 'the first room is read, however large')
  t.is((await read(0)).length, 3, 'no bound')
})

test('room_read answers a room whose keys have the wrong type with its error, and reads the others', async t => {
  const good = roomKeysFor('typed good')
  const broken = keysFor().room('typed broken')
  await redis.set(broken.log, 'not a stream')
  const [ms] = await good.append('g')
  const [brokenReply, goodReply] = await redis.roomRead(
    4,
    broken.log,
    broken.head,
    good.log,
    good.head,
    60,
    0,
    '0-0',
    10,
    0,
    '0-0',
    10,
    0,
  )
  t.is(brokenReply![0], -1)
  t.regex(String(brokenReply![1]), /WRONGTYPE/)
  t.deepEqual(goodReply, [ms, 0, `${ms}-1`, 'g', '', '1'])
})

test('room_append marks where an incarnation of the log begins: the head keeps the ms of seq 1 until log and head expire, and a log that starts again gets its own', async t => {
  const { log, head, append } = roomKeysFor('incarnations')
  const [began] = await append('a', 'b')
  t.is(await redis.hget(head, 'i'), String(began))
  await new Promise(resolve => setTimeout(resolve, 5))
  const [later, first] = await append('c')
  t.true(later > began && first === 3)
  t.is(await redis.hget(head, 'i'), String(began), 'the same incarnation: unchanged')
  t.is((await readOne(log, head, '0-0', 10, 60, 0))[0], began)

  await redis.del(log, head) // what their expiry does
  await new Promise(resolve => setTimeout(resolve, 5))
  const [again, restarted] = await append('d')
  t.is(restarted, 1, 'seq starts again at 1')
  t.true(again > later)
  t.is(await redis.hget(head, 'i'), String(again))
  t.is((await readOne(log, head, `${began}-2`, 10, 60, 0))[0], again)
})

test('room_append of a tracked message: the nonce goes with it into the log, the read and the announcement, and its track hash lives as long as the message', async t => {
  const keys = keysFor()
  const { log, head, channel } = keys.room('tracked')
  const track = keys.track('tracked', 'nonce1')
  const subscriber = server.client()
  await subscriber.subscribe(channel)
  const received = new Promise<unknown>(resolve =>
    subscriber.on('messageBuffer', (_, bytes: Buffer) => resolve(decodeAnnouncement(bytes))),
  )
  const [ms, first] = await appendOne(
    [log, head, channel, track],
    [100, MB, 60, 'PUBLISH', '', 0],
    'nonce1',
    ['hi'],
  )
  t.deepEqual(await received, { ms, first, messages: ['hi'], track: 'nonce1' })
  t.deepEqual(await readOne(log, head, '0-0', 10, 60, 0), [ms, 0, `${ms}-1`, 'hi', 'nonce1', '1'])
  t.deepEqual(await redis.hgetall(track), { s: `${ms}-1` })
  const ttl = await redis.ttl(track)
  t.true(ttl > 0 && ttl <= 60)
  subscriber.disconnect()
})

test('track_ack records each consumer once, counts them, and never revives an expired track', async t => {
  const keys = keysFor()
  const track = keys.track('r', 'n1')
  t.is(await redis.trackAck(track, 'w.c1', 'u1 1000', 10), 0, 'no track hash: not recorded')
  t.is(await redis.exists(track), 0)
  await redis.hset(track, 's', '5-1')
  await redis.expire(track, 60)
  t.is(await redis.trackAck(track, 'w.c1', 'u1 1000', 10), 1)
  t.is(
    await redis.trackAck(track, 'w.c1', 'u1 2000', 10),
    0,
    'acked again after a reconnect: the first time stays',
  )
  t.is(await redis.trackAck(track, 'i.c2', 'u2 3000', 10), 1)
  t.deepEqual(await redis.hgetall(track), {
    s: '5-1',
    b: '10',
    'c:w.c1': 'u1 1000',
    n: '2',
    'c:i.c2': 'u2 3000',
  })
  t.true((await redis.ttl(track)) > 0)
})

test('track_ack records at most the given number of receipts, and counts the acks past them', async t => {
  const track = keysFor().track('r', 'n2')
  await redis.hset(track, 's', '5-1')
  await redis.expire(track, 60)
  t.is(await redis.trackAck(track, 'w.c1', 'u1 1000', 2), 1)
  t.is(await redis.trackAck(track, 'w.c2', 'u2 1001', 2), 1)
  t.is(await redis.trackAck(track, 'w.c3', 'u3 1002', 2), -1, 'the third consumer: counted only')
  t.is(await redis.trackAck(track, 'w.c4', 'u4 1003', 2), -1)
  t.is(await redis.trackAck(track, 'w.c1', 'u1 2000', 2), 0, 'a recorded consumer acking again: nothing')
  t.is(await redis.trackAck(track, 'w.c3', 'u3 1004', 5), -1, 'a higher bound later: the first one holds')
  t.deepEqual(await redis.hgetall(track), {
    s: '5-1',
    b: '2',
    'c:w.c1': 'u1 1000',
    'c:w.c2': 'u2 1001',
    n: '2',
    m: '3',
  })
})

test('escalation scripts: due ids are leased to one claimer, which alone may retry or finish them', async t => {
  const { due, info } = keysFor().escalations
  const before = Date.now()
  const dueAt = await redis.escalationSchedule(due, info, 'id1', 0, 'm1', 60_000)
  await redis.escalationSchedule(due, info, 'later', 60_000, 'm2', 120_000)
  t.true(dueAt >= before - 1000 && dueAt <= Date.now() + 1000, 'Redis clock')
  const [now, leaseEnd, ...claimed] = await redis.escalationClaim(due, info, 5000, 10, 60_000)
  t.deepEqual(claimed, ['id1', 'm1', dueAt, 0])
  t.is(leaseEnd, Number(now) + 5000)
  t.deepEqual(
    (await redis.escalationClaim(due, info, 5000, 10, 60_000)).slice(2),
    [],
    'leased: nobody else gets it',
  )
  t.is(
    await redis.escalationRetry(due, info, 'id1', Number(leaseEnd) + 1, 0),
    0,
    'not our lease: nothing changes',
  )
  t.is(await redis.escalationRetry(due, info, 'id1', Number(leaseEnd), 0), 1)
  const [, lease2, ...again] = await redis.escalationClaim(due, info, 5000, 10, 60_000)
  t.deepEqual(again, ['id1', 'm1', dueAt, 1], 'due again, one failed attempt counted')
  t.is(await redis.escalationDone(due, info, 'id1', Number(leaseEnd)), 0, 'a lapsed lease cannot finish it')
  t.is(await redis.escalationDone(due, info, 'id1', Number(lease2)), 1)
  t.deepEqual(await redis.zrange(due, '0', '-1'), ['later'])
  t.deepEqual(Object.keys(await redis.hgetall(info)).sort(), ['d:later', 'm:later', 'n:later'])
})

test('escalation_schedule: both keys live keep ms past the latest escalation, also keys an older version left without expiry', async t => {
  const { due, info } = keysFor().escalations
  await redis.zadd(due, 0, 'from an older version')
  await redis.hset(info, 'm:from an older version', 'm')
  await redis.escalationSchedule(due, info, 'a', 1000, 'm', 120_000)
  await redis.escalationSchedule(due, info, 'b', 1000, 'm', 60_000) // a shorter keep does not shorten it
  for (const key of [due, info]) {
    const ttl = await redis.pttl(key)
    t.true(ttl > 110_000 && ttl <= 120_000, `${key}: ${ttl} ms`)
  }
})

test('escalation scripts: one an older version scheduled later than the rest (no expiry pushed) keeps both keys past its due time', async t => {
  const { due, info } = keysFor().escalations
  const olderDue = Number((await redis.time())[0]) * 1000 + 600_000
  await redis.zadd(due, olderDue, 'older, in 10 min')
  await redis.hset(info, 'm:older, in 10 min', 'm')
  await redis.escalationSchedule(due, info, 'a', 1000, 'm', 61_000) // its window: 60 s
  const ttls = async () => Promise.all([redis.pttl(due), redis.pttl(info)])
  for (const ttl of await ttls()) t.true(ttl > 650_000 && ttl <= 661_000, `schedule: ${ttl} ms`)
  // Scheduled by an older node after that: claims push the expiry out to its due time and the window.
  await redis.zadd(due, olderDue + 600_000, 'older, in 20 min')
  await redis.escalationClaim(due, info, 5000, 10, 60_000)
  for (const ttl of await ttls()) t.true(ttl > 1_250_000 && ttl <= 1_261_000, `claim: ${ttl} ms`)
})

test('escalation_claim: a lease that ran out (its node died) lets another claimer take it', async t => {
  const { due, info } = keysFor().escalations
  await redis.escalationSchedule(due, info, 'id', 0, 'm', 60_000)
  const [, first] = await redis.escalationClaim(due, info, 50, 10, 60_000)
  await new Promise(resolve => setTimeout(resolve, 80))
  const [, second, ...claimed] = await redis.escalationClaim(due, info, 50, 10, 60_000)
  t.is(claimed[0], 'id')
  t.true(Number(second) > Number(first))
  t.is(await redis.escalationDone(due, info, 'id', Number(first)), 0)
})

test('consumer_join adds once and names the node holding the consumer', async t => {
  const { rooms, node, left } = keysFor().consumer('t.c1')
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'r', '5-1', 60, 1000), [1, null])
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'r', '9-9', 60, 1000), [0, null])
  await redis.set(node, 'node-a')
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'r2', '0-0', 60, 1000), [1, 'node-a'])
  t.deepEqual(await redis.hgetall(rooms), { r: '5-1', r2: '0-0' })
  t.true((await redis.ttl(rooms)) > 0)
})

test('consumer_join refuses a new room past the most a consumer may be in, and changes nothing', async t => {
  const { rooms, node, left } = keysFor().consumer('t.c9')
  await redis.set(node, 'node-a')
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'a', '1-1', 60, 2), [1, 'node-a'])
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'b', '1-1', 60, 2), [1, 'node-a'])
  await redis.sadd(left, 'c')
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'c', '2-1', 60, 2), [-1, 'node-a'])
  t.deepEqual(await redis.smembers(left), ['c'], 'a refused join is no join: what was left stays left')
  // A room it is in already is no new room: answered as before.
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'a', '3-1', 60, 2), [0, 'node-a'])
  await redis.consumerLeave(rooms, node, left, 'a', '', 60)
  t.deepEqual(await redis.consumerJoin(rooms, node, left, 'c', '4-1', 60, 2), [1, 'node-a'])
  t.deepEqual(await redis.hgetall(rooms), { b: '1-1', c: '4-1' })
})

test('consumer_leave removes once', async t => {
  const { rooms, node, left } = keysFor().consumer('t.c2')
  await redis.consumerJoin(rooms, node, left, 'r', '0-0', 60, 1000)
  await redis.set(node, 'node-b')
  t.deepEqual(await redis.consumerLeave(rooms, node, left, 'r', '', 60), [1, 'node-b'])
  t.deepEqual(await redis.consumerLeave(rooms, node, left, 'r', '', 60), [0, 'node-b'])
})

/** A consumer of a user, with every key its scripts take (on one slot: the user's). */
function consumerOf(userId: string, source = 't') {
  const keys = keysFor()
  const consumerId = consumerIdOf({ userId, exp: 4_102_444_800, source })
  const ownRoom = userRoom(userId)
  return {
    ...keys.consumer(consumerId),
    consumerId,
    ownRoom,
    presence: keys.presence(userId),
    ownHead: keys.room(ownRoom).head,
    ownProgress: keys.room(ownRoom).progress,
  }
}

/** consumer_restore-4.lua for `c` by node-1 (ttl 600 s), with these room/cursor pairs. */
const restoreOf =
  (c: ReturnType<typeof consumerOf>) =>
  (...pairs: string[]) =>
    redis.consumerRestore(c.rooms, c.node, c.presence, c.left, 'node-1', 600, c.consumerId, c.ownRoom, pairs)
/** consumer_connect for consumer `c` from `nodeId` (ttl 60 s); evenIfHeld '1' takes a session another node holds. */
const connectOn = (c: ReturnType<typeof consumerOf>, nodeId: string, evenIfHeld: '1' | '') =>
  redis.consumerConnect(
    c.rooms,
    c.node,
    c.inflight,
    c.presence,
    c.ownHead,
    nodeId,
    60,
    c.consumerId,
    c.ownRoom,
    evenIfHeld,
  )
const USER = 'a1b2c3d4e5f6a1b2c3d4e5f6'

test('consumer_connect takes the session, joins the own room at its head, counts it present, reads the cursors', async t => {
  const c = consumerOf(USER)
  const connect = (nodeId: string, evenIfHeld: '1' | '') => connectOn(c, nodeId, evenIfHeld)
  await redis.consumerJoin(c.rooms, c.node, c.left, 'project', '7-3', 60, 1000)
  await redis.hset(c.ownHead, 's', 9, 't', 99)
  t.deepEqual(await connect('node-1', ''), [1, null, null, '99-9', 'project', '7-3', c.ownRoom, '99-9'])
  t.deepEqual(await redis.hgetall(c.presence), { [c.consumerId]: 'node-1' })
  t.true((await redis.ttl(c.presence)) > 0 && (await redis.ttl(c.rooms)) > 0)
  t.deepEqual(
    await connect('node-1', ''),
    [1, 'node-1', null, '99-9', 'project', '7-3', c.ownRoom, '99-9'],
    'its own node takes it again',
  )
  await redis.set(c.inflight, 'record')
  await redis.hset(c.ownHead, 's', 10, 't', 100)
  t.deepEqual(await connect('node-2', ''), [0, 'node-1'], 'held by another node: nothing changes')
  t.is(await redis.get(c.node), 'node-1')
  const again = await connect('node-2', '1')
  t.deepEqual(again.slice(0, 4), [1, 'node-1', 'record', '100-10'])
  t.is(await redis.hget(c.rooms, c.ownRoom), '99-9', 'a cursor is never overwritten')
  t.is(await redis.get(c.node), 'node-2')
  t.deepEqual(await redis.hgetall(c.presence), { [c.consumerId]: 'node-2' })
  const fresh = consumerOf('00000000000000000000000f')
  t.deepEqual(
    await connectOn(fresh, 'n', ''),
    [1, null, null, '0-0', fresh.ownRoom, '0-0'],
    'a room never published to: its origin',
  )
})

test('consumer_touch keeps the keys of the consumers a node holds, and names it again where its key or presence entry went', async t => {
  const held = consumerOf('00000000000000000000000a')
  const expired = consumerOf('00000000000000000000000b')
  const taken = consumerOf('00000000000000000000000c')
  for (const c of [held, expired, taken]) {
    await redis.consumerJoin(c.rooms, c.node, c.left, c.ownRoom, '0-0', 60, 1000) // as consumer_connect does
    await redis.consumerJoin(c.rooms, c.node, c.left, 'r', '1-1', 60, 1000)
    await redis.hset(c.presence, c.consumerId, 'node-1')
    await redis.expire(c.presence, 5)
  }
  await redis.set(held.node, 'node-1', 'EX', 5)
  await redis.set(taken.node, 'node-2', 'EX', 5)
  await redis.hdel(expired.presence, expired.consumerId) // dropped while node-1 looked dead
  await redis.hset(taken.presence, taken.consumerId, 'node-2')
  const keysOf = (c: typeof held): string[] => [c.rooms, c.node, c.presence]
  const consumers = [held, expired, taken]
  t.deepEqual(
    await redis.consumerTouch(
      9,
      ...consumers.flatMap(keysOf),
      'node-1',
      600,
      ...consumers.flatMap(c => [c.consumerId, c.ownRoom]),
    ),
    [1],
    'one node key names another node, and no record was lost',
  )
  for (const c of [held, expired]) {
    t.is(await redis.get(c.node), 'node-1', 'named again where it had expired')
    t.is(await redis.hget(c.presence, c.consumerId), 'node-1', 'present again where its entry went')
    for (const key of keysOf(c)) t.true((await redis.ttl(key)) > 500, key)
  }
  t.is(await redis.hget(taken.presence, taken.consumerId), 'node-2', "the other node's entry left alone")
  t.is(await redis.get(taken.node), 'node-2', 'another node took that session: left alone')
  t.true((await redis.ttl(taken.node)) <= 5)
  t.true((await redis.ttl(taken.rooms)) > 500, 'its rooms live on (the other node refreshes them too)')
})

test('consumer_touch leaves alone and names a consumer whose record Redis lost (no node key, no rooms), and consumer_restore writes it again once', async t => {
  const kept = consumerOf('00000000000000000000000d')
  const lost = consumerOf('00000000000000000000000e')
  await redis.consumerJoin(kept.rooms, kept.node, kept.left, 'r', '1-1', 60, 1000)
  await redis.consumerJoin(kept.rooms, kept.node, kept.left, kept.ownRoom, '0-0', 60, 1000)
  await redis.set(kept.node, 'node-1', 'EX', 60)
  const keysOf = (c: typeof kept): string[] => [c.rooms, c.node, c.presence]
  t.deepEqual(
    await redis.consumerTouch(
      6,
      ...keysOf(kept),
      ...keysOf(lost),
      'node-1',
      600,
      kept.consumerId,
      kept.ownRoom,
      lost.consumerId,
      lost.ownRoom,
    ),
    [0, 2],
    'the second consumer lost its record',
  )
  t.is(await redis.exists(lost.node, lost.rooms), 0, 'not named again without its rooms')
  const restore = restoreOf(lost)
  t.is(await restore('r', '5-3', 's', '0-0'), 1)
  t.deepEqual(await redis.hgetall(lost.rooms), { r: '5-3', s: '0-0' })
  t.is(await redis.get(lost.node), 'node-1')
  t.is(await redis.hget(lost.presence, lost.consumerId), 'node-1')
  for (const key of keysOf(lost)) t.true((await redis.ttl(key)) > 500, key)
  t.is(await restore('r', '9-9'), 0, 'a record that is there is left alone')
  t.is(await redis.hget(lost.rooms, 'r'), '5-3')
  t.deepEqual(
    await redis.consumerTouch(3, ...keysOf(lost), 'node-1', 600, lost.consumerId, lost.ownRoom),
    [0],
  )
})

test('a join made after Redis lost a live record, before the node wrote it again: consumer_touch names the consumer, and consumer_restore adds the session’s rooms to the joined one', async t => {
  const c = consumerOf('000000000000000000000010')
  const keysOf = [c.rooms, c.node, c.presence]
  // The record lost, then a producer's join: the hash holds only that room, and no node key.
  t.deepEqual(await redis.consumerJoin(c.rooms, c.node, c.left, 'joined', '7-1', 60, 1000), [1, null])
  t.deepEqual(
    await redis.consumerTouch(3, ...keysOf, 'node-1', 600, c.consumerId, c.ownRoom),
    [0, 1],
    'lost: no node key, and its rooms without its own room',
  )
  t.is(await redis.get(c.node), null, 'not named again with the joined room alone')
  const restore = restoreOf(c)
  t.is(await restore(c.ownRoom, '3-2', 'news', '4-4', 'joined', '2-0'), 1)
  t.deepEqual(
    await redis.hgetall(c.rooms),
    { [c.ownRoom]: '3-2', news: '4-4', joined: '2-0' },
    "the session's rooms at its cursors (it never left them), and the room joined since",
  )
  t.is(await redis.get(c.node), 'node-1')
  t.is(await redis.hget(c.presence, c.consumerId), 'node-1')
  t.is(await restore(c.ownRoom, '9-9'), 0, 'a record that is there is left alone')

  // Released (elsewhere): rooms with its own room, no node key. Not lost: left alone.
  await redis.del(c.node)
  t.deepEqual(await redis.consumerTouch(3, ...keysOf, 'node-1', 600, c.consumerId, c.ownRoom), [0])
  await redis.del(c.node)
  t.is(await restore(c.ownRoom, '9-9'), 0)
  t.is(await redis.get(c.node), null)
  t.is(await redis.hget(c.rooms, c.ownRoom), '3-2')
})

test("a leave made after Redis lost a live record is kept in `left` for consumer_restore, which writes the session's rooms back but that one; a join again undoes it", async t => {
  const c = consumerOf('000000000000000000000011')
  const restore = restoreOf(c)
  // The record lost: the leave removes nothing, finds no node, and keeps the room in `left`.
  t.deepEqual(await redis.consumerLeave(c.rooms, c.node, c.left, 'gone', c.ownRoom, 60), [0, null])
  t.deepEqual(await redis.consumerLeave(c.rooms, c.node, c.left, 'back', c.ownRoom, 60), [0, null])
  t.deepEqual((await redis.smembers(c.left)).sort(), ['back', 'gone'])
  t.true((await redis.ttl(c.left)) > 0)
  t.deepEqual(await redis.consumerJoin(c.rooms, c.node, c.left, 'back', '8-1', 60, 1000), [1, null])
  t.deepEqual(await redis.smembers(c.left), ['gone'], 'joined again: no longer left')
  t.is(await restore(c.ownRoom, '3-2', 'gone', '4-4', 'kept', '5-5'), 1)
  t.deepEqual(await redis.hgetall(c.rooms), { [c.ownRoom]: '3-2', kept: '5-5', back: '8-1' })
  t.is(await redis.exists(c.left), 0, 'used up')

  // A record that is there (its own room in it, no node key: released) keeps no trace of a leave.
  await redis.del(c.node)
  t.deepEqual(await redis.consumerLeave(c.rooms, c.node, c.left, 'kept', c.ownRoom, 60), [1, null])
  t.is(await redis.exists(c.left), 0)
})

test('consumer_restore writes back a consumer in 5,000 rooms (more values than Lua unpacks at once)', async t => {
  const lost = consumerOf('00000000000000000000000f')
  const pairs = Array.from({ length: 5000 }, (_, i) => [`room-${i}`, `${i}-1`]).flat()
  t.is(await restoreOf(lost)(...pairs), 1)
  t.is(await redis.hlen(lost.rooms), 5000)
  t.is(await redis.hget(lost.rooms, 'room-4999'), '4999-1')
})

test('cursor_commit moves cursors forward only, for rooms still joined', async t => {
  const c = consumerOf(USER, 'w')
  const commit = (...pairs: string[]) =>
    redis.cursorCommit(
      c.rooms,
      c.node,
      c.inflight,
      c.presence,
      c.ownProgress,
      60,
      '',
      '',
      c.consumerId,
      pairs,
    )
  await redis.consumerJoin(c.rooms, c.node, c.left, 'a', '10-5', 60, 1000)
  await redis.consumerJoin(c.rooms, c.node, c.left, 'b', '10-5', 60, 1000)
  t.deepEqual(await commit('a', '10-7', 'b', '10-4', 'gone', '99-1'), [1, 0])
  t.deepEqual(await redis.hgetall(c.rooms), { a: '10-7', b: '10-5' })
  t.deepEqual(await commit('a', '11-1'), [1, 0], 'a later ms wins over a higher seq')
})

test('cursor_commit releases the session, the presence entry and the own room progress only for its own node', async t => {
  const c = consumerOf(USER, 'i')
  const connect = (nodeId: string) => connectOn(c, nodeId, '1')
  const release = (nodeId: string, record: string, cursor: string) =>
    redis.cursorCommit(
      c.rooms,
      c.node,
      c.inflight,
      c.presence,
      c.ownProgress,
      60,
      nodeId,
      record,
      c.consumerId,
      [c.ownRoom, cursor],
    )
  await connect('node-2')
  await redis.hset(c.ownProgress, c.consumerId, '1-1', 'w.other', '1-1')
  t.deepEqual(
    await release('node-1', 'stale', '1-1'),
    [1, 0],
    'its cursor moved; not released: another node holds it',
  )
  t.is(await redis.get(c.node), 'node-2', 'another node holds it')
  t.is(await redis.hget(c.ownProgress, c.consumerId), '1-1', "its progress entry is node-2's to keep")
  t.is(await redis.get(c.inflight), null)
  t.deepEqual(await redis.hgetall(c.presence), { [c.consumerId]: 'node-2' }, 'still present on node-2')
  t.deepEqual(await release('node-2', 'batch-7', '1-2'), [1, 1])
  t.is(await redis.get(c.node), null)
  t.is(await redis.get(c.inflight), 'batch-7')
  t.is(await redis.hget(c.rooms, c.ownRoom), '1-2')
  t.deepEqual(await redis.hgetall(c.presence), {})
  t.deepEqual(await redis.hgetall(c.ownProgress), { 'w.other': '1-1' }, 'only its own progress entry goes')
  await connect('node-3')
  await release('node-3', '', '1-3')
  t.is(await redis.get(c.inflight), null, 'a clean release drops the record')
})

test('the test server is not the default port', t => {
  t.not(server.port, 6379)
  t.true(server.client() instanceof Redis)
})
