/**
 * A slot moved to another master while a node's command client still has the
 * old slot map: the tick's auto-pipeline to the old master mixes a write to a
 * key that stayed with a command for the moved key. ioredis sends such a
 * pipeline again only when all its commands were redirected alike, so the
 * moved command came back with MOVED; the command client sends it again on
 * its own (src/redis/redirects.ts), and it follows the move.
 */
import test, { type ExecutionContext } from 'ava'
import { silentLogger } from '../../src/log.js'
import { createRedisClients } from '../../src/redis/connect.js'
import { slotOf } from '../../src/redis/slot.js'
import { namesOnOneMaster, startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisCluster | undefined
test.before(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 0 })
})
test.after.always(() => cluster?.stop())

/** A node's command clients, and two keys on one master: `stays` ('a') and `moves` ('b'); that master and another. */
async function twoKeysOnOneMaster(t: ExecutionContext, prefix: string) {
  const redis = cluster!
  const clients = createRedisClients(redis.target, silentLogger)
  t.teardown(() => clients.quit())
  await clients.connect(5000)
  const names = await namesOnOneMaster(redis, prefix, 2, name => `{${name}}`)
  const [stays, moves] = names.map(name => `{${name}}`) as [string, string]
  const commands = clients.commands
  await Promise.all([commands.set(stays, 'a'), commands.set(moves, 'b')])
  const owner = await redis.masterOf(moves)
  const other = redis.nodes.find(node => node.port !== owner.port)!
  return { redis, commands, stays, moves, owner, other }
}

/** One tick, so one auto-pipeline to the old master, which has only `stays` now: both answered. */
async function bothAnswered(
  t: ExecutionContext,
  { commands, stays, moves }: Awaited<ReturnType<typeof twoKeysOnOneMaster>>,
): Promise<void> {
  const [written, read] = await Promise.allSettled([commands.set(stays, 'c'), commands.get(moves)])
  t.deepEqual(written, { status: 'fulfilled', value: 'OK' })
  t.deepEqual(read, { status: 'fulfilled', value: 'b' })
}

// Serial: MIGRATE blocks its source until the target answers, so two tests migrating between the
// same two masters at once, each the other's target, wait on each other until MIGRATE times out.
test.serial('a command redirected inside an auto-pipeline (MOVED) is sent again and answered', async t => {
  const keys = await twoKeysOnOneMaster(t, 'redirect')
  const { redis, commands, moves, owner, other } = keys
  await redis.moveSlot(slotOf(moves), other)
  t.not((await redis.masterOf(moves)).port, owner.port, 'the slot moved')
  await bothAnswered(t, keys)
  t.is(await commands.get(moves), 'b')
})

test.serial(
  'a command of an auto-pipeline whose key is mid-migration (ASK) is sent again and answered',
  async t => {
    const keys = await twoKeysOnOneMaster(t, 'asked')
    const { redis, moves, owner, other } = keys
    // Half a reshard: the slot is migrating and its one key is on the target already.
    const slot = slotOf(moves)
    const id = async (port: number): Promise<string> =>
      (await redis.nodeClient(port).call('CLUSTER', 'MYID')) as string
    await redis.nodeClient(other.port).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', await id(owner.port))
    await redis.nodeClient(owner.port).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', await id(other.port))
    await redis.nodeClient(owner.port).call('MIGRATE', '127.0.0.1', other.port, '', 0, 5000, 'KEYS', moves)
    await bothAnswered(t, keys)
    await redis.moveSlot(slot, other) // ends the migration (no key left to move)
  },
)
