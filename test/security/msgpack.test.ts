/**
 * Hostile msgpack from a consumer of a `codec=msgpack` session, against a real
 * node (`snapper start --workers 0`, real Redis, real sockets). The frames
 * are written byte by byte here, never with the code under test. Each must
 * get the Parse error notice (docs/consumer-protocol.md §12.1), small and at
 * once; the session, a bystander consumer and the process go on, and nothing
 * is logged at error.
 */
import test from 'ava'
import { unpack } from 'msgpackr'
import { WebSocket } from 'ws'
import { startCli } from '../helpers/cli.js'
import { RawConsumer } from '../helpers/raw-consumer.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { roleTokens, SECRET } from './tokens.js'
import { newUserId } from '../helpers/broker.js'

let redis: RedisServer
test.before(async () => {
  redis = await startRedis()
})
test.after.always(() => redis?.stop())

const u32 = (n: number): number[] => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
const str = (text: string): number[] => [0xa0 | text.length, ...Buffer.from(text)]
/** {jsonrpc: '2.0', id: 1, method: 'echo', params: <params>}: a request, which the node echoes. */
const request = (params: number[]): Buffer =>
  Buffer.from([
    0x84,
    ...str('jsonrpc'),
    ...str('2.0'),
    ...str('id'),
    1,
    ...str('method'),
    ...str('echo'),
    ...str('params'),
    ...params,
  ])

/**
 * msgpackr's structured-clone extensions: 0x69 (fixext 4, an id) names the value
 * after it, 0x70 (fixext 4) refers to it again. Each level is a pair of the same
 * child: 22 levels are 324 bytes and 2^22 leaves once walked (25: 5 s of CPU and a 100 MB echo).
 */
function sharedPairs(levels: number): number[] {
  let bytes = str('x')
  for (let level = levels; level >= 1; level--)
    bytes = [0x92, 0xd6, 0x69, ...u32(level), ...bytes, 0xd6, 0x70, ...u32(level)]
  return bytes
}

/** msgpackr's Set extension (fixext 1, type 0x73, then the Set's members as an array), `depth` deep. */
const nestedSets = (depth: number): number[] => [
  ...Array.from({ length: depth }, () => [0xd4, 0x73, 0x00, 0x91]).flat(),
  0xc0,
]

const HOSTILE: [what: string, frame: Buffer][] = [
  ['shared references (extensions 0x69, 0x70), 22 levels', request(sharedPairs(22))],
  ['Sets (extension 0x73) 1,000 deep', request(nestedSets(1000))],
  ['a BigInt (extension 0x42) of 255 bytes', request([0xc7, 0xff, 0x42, ...Array<number>(255).fill(0xff)])],
  ['an Error (extension 0x65)', request([0xd4, 0x65, 0x00, 0x92, ...str('valueOf'), ...str('m')])],
  ['a RegExp (extension 0x78)', request([0xd4, 0x78, 0x00, 0x92, ...str('(a+)+$'), ...str('')])],
  ['a timestamp (extension -1)', request([0xd6, 0xff, ...u32(1)])],
]

const PARSE_ERROR = {
  jsonrpc: '2.0',
  method: 'invalid',
  params: [{ payload: { message: 'Parse error', code: -32700 }, type: 'invalid' }],
}

/** A raw Engine.IO 4 websocket session with codec=msgpack: its binary replies, decoded, with their sizes. */
class MsgpackSession {
  readonly replies: { bytes: number; value: unknown }[] = []
  readonly socket: WebSocket
  closeCode: number | undefined

  constructor(port: number, token: string) {
    this.socket = new WebSocket(
      `ws://127.0.0.1:${port}/websocket/?EIO=4&transport=websocket&codec=msgpack&token=${token}`,
      { maxPayload: 2 ** 30 },
    )
    this.socket.on('message', (data: Buffer, isBinary) => {
      if (!isBinary && String(data) === '2') this.socket.send('3')
      else if (isBinary) this.replies.push({ bytes: data.length, value: unpack(data) })
    })
    this.socket.on('close', code => (this.closeCode = code))
  }

  async reply(send: Buffer, timeoutMs = 5000): Promise<{ bytes: number; value: unknown }> {
    const count = this.replies.length
    this.socket.send(send)
    const deadline = Date.now() + timeoutMs
    while (this.replies.length === count) {
      if (this.closeCode !== undefined) throw new Error(`closed with ${this.closeCode}`)
      if (Date.now() > deadline) throw new Error('no reply in time')
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    return this.replies[count]!
  }
}

test('msgpack extension types get the Parse error notice at once; the session, a bystander and the node go on', async t => {
  const cli = await startCli(t, {
    workers: 0,
    env: { SNAPPER_REDIS: redis.url, SNAPPER_REDIS_PREFIX: uniquePrefix(), SNAPPER_TOKEN_SECRETS: SECRET },
  })
  const bystander = new RawConsumer(cli.ports.gateway, roleTokens.consumer(newUserId()))
  const attacker = new MsgpackSession(cli.ports.gateway, roleTokens.consumer())
  t.teardown(() => [bystander.socket, attacker.socket].forEach(socket => socket.close()))
  await Promise.all([bystander.opened(), new Promise(resolve => attacker.socket.once('open', resolve))])

  // The bystander's echo round trips, every 20 ms while the attack lasts.
  let slowestMs = 0
  let isAttacking = true
  const pinging = (async () => {
    for (let n = 0; isAttacking; n++) {
      const startedAt = performance.now()
      await bystander.request(`ping ${n}`)
      slowestMs = Math.max(slowestMs, performance.now() - startedAt)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()

  for (const [what, frame] of HOSTILE) {
    const startedAt = performance.now()
    const { bytes, value } = await attacker.reply(frame)
    t.deepEqual(value, PARSE_ERROR, `${what} (${frame.length} bytes): answered ${bytes} bytes`)
    t.true(
      performance.now() - startedAt < 1000,
      `${what}: answered in ${Math.round(performance.now() - startedAt)} ms`,
    )
  }
  isAttacking = false
  await pinging
  t.true(slowestMs < 1000, `the bystander's slowest echo took ${Math.round(slowestMs)} ms`)

  // Plain msgpack still works on the same session: a request's params come back as they went.
  const plain = request([
    0x93,
    ...str('a'),
    0xcb,
    ...Buffer.from('400921fb54442d18', 'hex'),
    0x81,
    ...str('b'),
    0x92,
    0xc3,
    0xc0,
  ])
  t.deepEqual((await attacker.reply(plain)).value, {
    jsonrpc: '2.0',
    id: 1,
    result: ['a', Math.PI, { b: [true, null] }],
  })
  t.is(attacker.closeCode, undefined, 'the session is still open')
  t.is(cli.child.exitCode, null, 'the process is alive')
  const errors = cli
    .output()
    .split('\n')
    .filter(line => /"level":(50|60)/.test(line))
  t.deepEqual(errors, [], 'no error logged: no handler failed')
})
