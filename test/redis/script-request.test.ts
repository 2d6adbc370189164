/**
 * Script calls written as one request (src/redis/script-request.ts): what the
 * script receives is exactly what was written, on one Redis and on a Cluster
 * (routed by the first key's slot); EVAL goes only where the script has not
 * run; after the script cache is emptied a call fails and the next one runs.
 */
import test from 'ava'
import { Redis, type Cluster } from 'ioredis'
import { ScriptRequests } from '../../src/redis/script-request.js'
import { slotOf } from '../../src/redis/slot.js'
import { uniquePrefix } from '../helpers/redis.js'
import { redisPerFile, TOPOLOGIES } from '../helpers/topology.js'

const redis = redisPerFile(test)

/** Echoes its keys and arguments, and stores the first argument under the first key (so the slot must be right). */
const ECHO = `
redis.call('SET', KEYS[1], ARGV[1])
return {KEYS, ARGV}`

for (const topology of TOPOLOGIES) {
  test(`${topology}: the script gets exactly the keys and arguments written, text of any bytes and numbers`, async t => {
    const clients = await redis.clients(topology, t)
    const script = new ScriptRequests(ECHO)
    const prefix = uniquePrefix()
    const keys = [`${prefix}:{room}:a`, `${prefix}:{room}:b`]
    const args = ['plain', 'añø 日本 🎉', '', 'line\r\nbreak', 42, 1.5]
    const request = script.start(keys.length, args.length)
    for (const key of keys) request.key(key)
    for (const arg of args) request.arg(arg)
    const reply = await script.send(clients.commands, request.end())
    t.deepEqual(reply, [keys, args.map(String)])
    t.is(await clients.commands.get(keys[0]!), 'plain')
    // The same call in one step (scripts of fixed arity).
    t.deepEqual(await script.call(clients.commands, keys, ['again', ...args.slice(1)]), [
      keys,
      ['again', ...args.slice(1).map(String)],
    ])
    t.is(await clients.commands.get(keys[0]!), 'again')
  })
}

// Serial (AVA runs these before the others): it counts the server's EVAL calls and empties its script cache.
test.serial(
  'standalone: EVAL only on a connection where the script has not run; after the cache is emptied a call fails and the next runs',
  async t => {
    const clients = await redis.clients('standalone', t)
    const client = clients.commands
    const script = new ScriptRequests(`${ECHO} -- ${uniquePrefix()}`) // a script Redis has never seen
    const key = `${uniquePrefix()}:k`
    const call = (value: string): Promise<unknown> =>
      script.send(client, script.start(1, 1).key(key).arg(value).end())
    const calls = async (): Promise<{ eval: number; evalsha: number }> => {
      const info = await client.info('commandstats')
      const count = (name: string): number =>
        Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0)
      return { eval: count('eval'), evalsha: count('evalsha') }
    }
    const before = await calls()
    for (const value of ['1', '2', '3']) await call(value)
    const after = await calls()
    t.deepEqual(
      { eval: after.eval - before.eval, evalsha: after.evalsha - before.evalsha },
      { eval: 1, evalsha: 2 },
    )

    await client.script('FLUSH')
    // It did not run; sent again it could run after calls sent later (see ScriptRequests), so it fails.
    await t.throwsAsync(call('4'), { message: /^NOSCRIPT/ })
    t.is(await client.get(key), '3')
    await call('5')
    t.is(await client.get(key), '5')
  },
)

test.serial(
  'standalone: an EVAL refused before it ran (here NOPERM) loaded nothing: the next call on that connection is an EVAL again, not an EVALSHA that fails NOSCRIPT',
  async t => {
    const admin = redis.standalone.client()
    const user = `u${uniquePrefix()}`
    // Every command but EVAL: a refusal before the script is compiled, as CLUSTERDOWN or LOADING are.
    await admin.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-eval')
    t.teardown(() => admin.call('ACL', 'DELUSER', user))
    const client = new Redis(redis.standalone.url, { username: user, password: 'pw' })
    t.teardown(() => client.disconnect())
    const script = new ScriptRequests(`${ECHO} -- ${uniquePrefix()}`) // a script Redis has never seen
    const key = `${uniquePrefix()}:k`
    const call = (value: string): Promise<unknown> =>
      script.send(client, script.start(1, 1).key(key).arg(value).end())
    await t.throwsAsync(call('1'), { message: /^NOPERM/ })
    await admin.call('ACL', 'SETUSER', user, '+eval')
    await call('2')
    t.is(await client.get(key), '2')
  },
)

test.serial(
  'cluster: an EVAL redirected while its slot moves (ASK) loaded nothing where it was refused: the next call there is an EVAL again, not an EVALSHA that fails NOSCRIPT',
  async t => {
    const cluster = redis.cluster
    const client = (await redis.clients('cluster', t)).commands as Cluster
    const key = `${uniquePrefix()}:{moving}` // never written: the slot's owner sends it on (ASK)
    const slot = slotOf(key)
    const owner = await cluster.masterOf(slot)
    const other = client.nodes('master').find(node => node.options.port !== owner.port)!.options.port!
    const [ownerAdmin, otherAdmin] = [cluster.nodeClient(owner.port), cluster.nodeClient(other)]
    const idOf = async (admin: Redis): Promise<string> => String(await admin.call('CLUSTER', 'MYID'))
    const stable = (): Promise<unknown> =>
      Promise.all([ownerAdmin, otherAdmin].map(admin => admin.call('CLUSTER', 'SETSLOT', slot, 'STABLE')))
    t.teardown(stable)
    await otherAdmin.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', await idOf(ownerAdmin))
    await ownerAdmin.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', await idOf(otherAdmin))
    // Reads only: the importing node, asked, must not keep a key of a slot it will not own.
    const script = new ScriptRequests(`return KEYS[1] -- ${uniquePrefix()}`) // a script Redis has never seen
    const call = (): Promise<unknown> => script.send(client, script.start(1, 0).key(key).end())
    t.is(await call(), key) // EVAL to the owner: ASK; EVAL where it was asked to go: runs
    await stable()
    t.is(await call(), key) // to the owner again
  },
)

test('a request with more or fewer arguments than it was started with throws, and the next one is sound', async t => {
  const script = new ScriptRequests(ECHO)
  t.throws(() => script.start(1, 1).key('k').arg('a').arg('b'), { message: /more arguments/ })
  t.throws(() => script.start(1, 2).key('k').arg('a').end(), { message: /fewer arguments/ })
  const request = script.start(1, 1).key('k').arg('a').end()
  t.is(request.text.slice(request.headLength), '$1\r\n1\r\n$1\r\nk\r\n$1\r\na\r\n')
  t.is(request.count, 5)
})
