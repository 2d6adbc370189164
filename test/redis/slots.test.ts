/**
 * Single-slot by construction: every key a script touches (and the channel it
 * announces on) hashes to one Redis Cluster slot, whatever the room, consumer
 * and user names and whatever prefix the config accepts. Slots by the function
 * ioredis routes with (cluster-key-slot), and by Redis itself: our slotOf
 * (src/redis/slot.ts), checked here against `CLUSTER KEYSLOT` of a real
 * cluster-enabled redis-server.
 */
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import test from 'ava'
import fc from 'fast-check'
import { ConfigError, loadConfig } from '../../src/config/load.js'
import { consumerIdOf } from '../../src/auth/token.js'
import { Keys, userRoom } from '../../src/redis/keys.js'
import { LUA_DIR } from '../../src/redis/scripts.js'
import { slotOf } from '../../src/redis/slot.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'

const require = createRequire(import.meta.url)
/** The slot function of ioredis' own dependency: the routing our commands get. */
const calculateSlot = require('cluster-key-slot') as (key: string) => number

interface Names {
  readonly prefix: string
  readonly room: string
  readonly consumerId: string
  readonly userId: string
  readonly nodeId: string
  /** A track nonce: base64url, possibly empty (a plain append's track key). */
  readonly nonce: string
  /** A user id as tokens carry it, and the id of one of its consumers (consumerIdOf). */
  readonly user: string
  readonly userConsumerId: string
}

/**
 * The KEYS of every script in lua/, as the broker builds them (room-log.ts,
 * membership.ts, node.ts, presence.ts, tracking.ts, escalation.ts). A test below checks that this table
 * names every script with its key count.
 */
const SCRIPT_KEYS: Record<string, (keys: Keys, n: Names) => string[]> = {
  'room_append-4n.lua': (keys, n) => {
    const { log, head, channel } = keys.room(n.room)
    return [log, head, channel, keys.track(n.room, n.nonce)]
  },
  'track_ack-1.lua': (keys, n) => [keys.track(n.room, n.nonce)],
  'escalation_schedule-2.lua': keys => [keys.escalations.due, keys.escalations.info],
  'escalation_claim-2.lua': keys => [keys.escalations.due, keys.escalations.info],
  'escalation_retry-2.lua': keys => [keys.escalations.due, keys.escalations.info],
  'escalation_done-2.lua': keys => [keys.escalations.due, keys.escalations.info],
  'room_read-2n.lua': (keys, n) => [keys.room(n.room).log, keys.room(n.room).head],
  'progress_write-1n.lua': (keys, n) => [keys.room(n.room).progress],
  'consumer_join-3.lua': (keys, n) => {
    const { rooms, node, left } = keys.consumer(n.consumerId)
    return [rooms, node, left]
  },
  'consumer_leave-3.lua': (keys, n) => {
    const { rooms, node, left } = keys.consumer(n.consumerId)
    return [rooms, node, left]
  },
  'consumer_connect-5.lua': (keys, n) => {
    const { rooms, node, inflight } = keys.consumer(n.userConsumerId)
    return [rooms, node, inflight, keys.presence(n.user), keys.room(userRoom(n.user)).head]
  },
  'consumer_touch-3n.lua': (keys, n) => [
    keys.consumer(n.userConsumerId).rooms,
    keys.consumer(n.userConsumerId).node,
    keys.presence(n.user),
  ],
  'consumer_restore-4.lua': (keys, n) => [
    keys.consumer(n.userConsumerId).rooms,
    keys.consumer(n.userConsumerId).node,
    keys.presence(n.user),
    keys.consumer(n.userConsumerId).left,
  ],
  'cursor_commit-5.lua': (keys, n) => {
    const { rooms, node, inflight } = keys.consumer(n.userConsumerId)
    return [rooms, node, inflight, keys.presence(n.user), keys.room(userRoom(n.user)).progress]
  },
}

/** Any text, with the characters that make or break a hash tag common. */
const text = fc.oneof(
  fc.string({ minLength: 1, maxLength: 30 }),
  fc.string({ unit: fc.constantFrom('{', '}', 'a', ':', 'é', '😀'), minLength: 1, maxLength: 12 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
)
/** A prefix the config accepts: no braces. */
const prefix = text.map(value => value.replace(/[{}]/g, '') || 'P')
const nonce = fc
  .base64String({ maxLength: 24 })
  .map(value => value.replace(/=/g, '').replace(/\+/g, '-').replace(/\//g, '_'))
/** A token's user and one of its consumers: any platform, any expiry. */
const user = fc
  .record({
    user: fc.stringMatching(/^[a-f0-9]{24}$/),
    exp: fc.integer({ min: 1, max: 2 ** 40 }),
    source: fc.constantFrom('android', 'ios', 'web', 'x'),
  })
  .map(({ user, exp, source }) => ({ user, userConsumerId: consumerIdOf({ userId: user, exp, source }) }))
const names = fc
  .tuple(fc.record({ prefix, room: text, consumerId: text, userId: text, nodeId: text, nonce }), user)
  .map(([named, owned]) => ({ ...named, ...owned }))

/** Redis' own answer: one cluster-enabled node (no slots needed) for CLUSTER KEYSLOT. */
let keyslot: (key: string) => Promise<number>
let server: RedisServer | undefined
test.before(async () => {
  server = await startRedis(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'])
  const redis = server.client()
  keyslot = async key => (await redis.call('CLUSTER', 'KEYSLOT', key)) as number
})
test.after.always(() => server?.stop())

test('the table names every script in lua/ with its key count', t => {
  const files = readdirSync(LUA_DIR).filter(file => file.endsWith('.lua'))
  t.deepEqual(Object.keys(SCRIPT_KEYS).sort(), files.sort())
  const sample: Names = {
    prefix: 'SNP',
    room: 'r',
    consumerId: 'c',
    userId: 'u',
    nodeId: 'n',
    nonce: 'x',
    user: 'a1b2c3d4e5f6a1b2c3d4e5f6',
    userConsumerId: consumerIdOf({ userId: 'a1b2c3d4e5f6a1b2c3d4e5f6', exp: 1 }),
  }
  for (const [file, keysOf] of Object.entries(SCRIPT_KEYS)) {
    const count = Number(/-(\d+)n?\.lua$/.exec(file)?.[1]) // -4n: 4 keys a part, any number of parts
    t.is(keysOf(new Keys(sample.prefix), sample).length, count, file)
  }
})

test('every script touches one slot, for any names, as ioredis routes and as Redis hashes', t => {
  fc.assert(
    fc.property(names, n => {
      const keys = new Keys(n.prefix)
      for (const [file, keysOf] of Object.entries(SCRIPT_KEYS)) {
        const scriptKeys = keysOf(keys, n)
        if (new Set(scriptKeys.map(calculateSlot)).size !== 1)
          throw new Error(`${file}: ioredis routes to 2 slots`)
        if (new Set(scriptKeys.map(slotOf)).size !== 1) throw new Error(`${file}: Redis sees 2 slots`)
        if (calculateSlot(scriptKeys[0]!) !== slotOf(scriptKeys[0]!))
          throw new Error(`${file}: routed off its slot`)
      }
    }),
    { numRuns: 3000 },
  )
  t.pass()
})

test("a user's own room, tracked messages included, is on the slot of the user's consumers and presence", t => {
  fc.assert(
    fc.property(names, n => {
      const keys = new Keys(n.prefix)
      const own = keys.room(userRoom(n.user))
      const slot = slotOf(keys.presence(n.user))
      const userKeys = [own.log, own.head, own.channel, own.progress, keys.track(userRoom(n.user), n.nonce)]
      userKeys.push(...Object.values(keys.consumer(n.userConsumerId)))
      if (!userKeys.every(key => slotOf(key) === slot && calculateSlot(key) === slot))
        throw new Error('a key of the user off its slot')
    }),
    { numRuns: 1000 },
  )
  t.pass()
})

test('a room announces on its log slot; a node hears its control channel on its own slot', t => {
  fc.assert(
    fc.property(names, n => {
      const keys = new Keys(n.prefix)
      const room = keys.room(n.room)
      // SPUBLISH inside room_append stays on the script's slot, and nodes SSUBSCRIBE there.
      if (calculateSlot(room.channel) !== calculateSlot(room.log)) throw new Error('channel off the log slot')
      if (calculateSlot(keys.nodeChannel(n.nodeId)) !== calculateSlot(keys.nodeAlive(n.nodeId)))
        throw new Error('control channel off the node slot')
    }),
    { numRuns: 3000 },
  )
  t.pass()
})

test('slotOf (which groups appends by server) is CLUSTER KEYSLOT', async t => {
  const samples = fc.sample(fc.oneof(text, fc.string({ unit: 'binary', maxLength: 40 })), 500)
  // Redis' hash tag rules; `{}` hashes the whole key (where cluster-key-slot 1.1 differs).
  samples.push('foo', '{user1000}.following', 'foo{}{bar}', 'foo{{bar}}zap', 'foo{bar}{zap}', '{}}{', '')
  const redis = await Promise.all(samples.map(keyslot))
  t.deepEqual(samples.map(slotOf), redis)
})

test('the config refuses a key prefix with a brace', t => {
  for (const bad of ['a{b}', '{', 'x}'])
    t.throws(() => loadConfig({ env: { SNAPPER_REDIS_PREFIX: bad } }), { instanceOf: ConfigError })
  t.is(loadConfig({ env: { SNAPPER_REDIS_PREFIX: 'app:snapper' } }).redisPrefix, 'app:snapper')
})
