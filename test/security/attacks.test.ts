/**
 * The attack suite, against a real node (`snapper start --workers 0`, real
 * Redis, real sockets): every entry point that takes a token gets every
 * malformed and forged token, and tokens of the wrong role; the snapper.ws
 * cookie names another user's consumer. Every refusal must be the documented
 * one, never a 500. Meanwhile a producer and two consumers connected before
 * keep working, new ones connect, and the process logs no error at all: the
 * last-resort handler (which a planted bug shows to work) is never reached.
 */
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { WebSocket } from 'ws'
import { defaults } from '../../src/config/defaults.js'
import { Keys } from '../../src/redis/keys.js'
import { call, connectProducer, newUserId } from '../helpers/broker.js'
import { startCli, type RunningCli } from '../helpers/cli.js'
import { connectConsumer } from '../helpers/consumers.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'
import { frame, RawClient } from '../producer/setup.js'
import { hostileTokens, REASONS, roleTokens, SECRET } from './tokens.js'

let redis: RedisServer
test.before(async () => {
  redis = await startRedis()
})
test.after.always(() => redis?.stop())

/** What an entry point answered: its status (a JSON-RPC code on TCP) and the reason it gave, if any. */
interface Answer {
  readonly status: number
  readonly reason?: string
}

/** The refusals an entry point owes: for a bad token (any kind above), and for an authentic one of another role. */
interface EntryPoint {
  readonly name: string
  /** Header-borne tokens cannot carry control bytes: fetch refuses to send them. */
  readonly isHeader?: boolean
  readonly bad: (reason: string, token: string) => Answer
  ask(cli: RunningCli, token: string): Promise<Answer>
}

const jsonReason = (body: unknown): string | undefined =>
  (body as { error?: { data?: { reason?: string } } }).error?.data?.reason

async function httpAnswer(url: string, init?: RequestInit): Promise<Answer> {
  const response = await fetch(url, init)
  const body: unknown = await response.json()
  return { status: response.status, reason: jsonReason(body) ?? (body as { message?: string }).message }
}

/** The producer's auth on a raw socket: the one reply frame, then the server's FIN. */
async function producerAuth(port: number, token: string): Promise<Answer> {
  const client = await RawClient.connect(port)
  client.send(frame(JSON.stringify({ jsonrpc: '2.0', id: 'a:1', method: 'auth', params: [token] })))
  const rest = await client.ended()
  const reply = JSON.parse(rest.slice(rest.indexOf('\r\n') + 2, -2)) as {
    error: { code: number; data: string }
  }
  return { status: reply.error.code, reason: reply.error.data }
}

/** A websocket handshake that must be refused before 101: its HTTP status. */
function upgradeStatus(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.once('unexpected-response', (_, response) => resolve({ status: response.statusCode ?? 0 }))
    socket.once('open', () => reject(new Error(`upgraded: ${url.slice(0, 120)}`)))
    socket.once('error', () => {}) // the refusal, reported above
  })
}

const q = encodeURIComponent
const handshakeQuery = (eio: number, transport: string, token: string): string =>
  `EIO=${eio}&transport=${transport}&token=${q(token)}`
/** A handshake query past maxQueryBytes (the 4 KB signature's) is refused for its length, before its token is read. */
const isTooLong = (query: string): boolean => Buffer.byteLength(query) > defaults.maxQueryBytes
const ENTRY_POINTS: EntryPoint[] = [
  {
    name: 'producer auth (TCP)',
    bad: reason => ({ status: 401, reason }),
    ask: (cli, token) => producerAuth(cli.ports.producer, token),
  },
  ...([3, 4] as const).flatMap((eio): EntryPoint[] => [
    {
      name: `EIO ${eio} polling handshake`,
      bad: (reason, token) =>
        isTooLong(handshakeQuery(eio, 'polling', token))
          ? { status: 400, reason: 'Bad request' }
          : { status: 403, reason },
      ask: (cli, token) =>
        httpAnswer(
          `http://127.0.0.1:${cli.ports.gateway}/websocket/?${handshakeQuery(eio, 'polling', token)}`,
        ),
    },
    {
      name: `EIO ${eio} websocket handshake`,
      bad: () => ({ status: 400 }),
      ask: (cli, token) =>
        upgradeStatus(
          `ws://127.0.0.1:${cli.ports.gateway}/websocket/?${handshakeQuery(eio, 'websocket', token)}`,
        ),
    },
  ]),
  {
    name: 'gateway GET /stats',
    bad: reason => ({ status: 401, reason }),
    ask: (cli, token) => httpAnswer(`http://127.0.0.1:${cli.ports.gateway}/stats?token=${q(token)}`),
  },
  {
    name: 'admin GET /stats?token=',
    bad: reason => ({ status: 401, reason }),
    ask: (cli, token) => httpAnswer(`http://127.0.0.1:${cli.ports.admin}/stats?token=${q(token)}`),
  },
  {
    name: 'admin GET /stats, Bearer',
    isHeader: true,
    bad: reason => ({ status: 401, reason }),
    ask: (cli, token) =>
      httpAnswer(`http://127.0.0.1:${cli.ports.admin}/stats`, {
        headers: { authorization: `Bearer ${token}` },
      }),
  },
  {
    name: 'admin POST /v1/publish, Bearer',
    isHeader: true,
    bad: reason => ({ status: 401, reason }),
    ask: (cli, token) =>
      httpAnswer(`http://127.0.0.1:${cli.ports.admin}/v1/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ room: 'stolen', message: 'm' }),
      }),
  },
]

/** Authentic tokens at the entry points of another role: what each owes (entry points not listed accept the token). */
const ROLE_CASES: [what: string, token: () => string, answers: Record<string, Answer>][] = [
  [
    'a consumer token',
    () => roleTokens.consumer(),
    {
      'producer auth (TCP)': { status: 401, reason: REASONS.consumerAsProducer },
      'gateway GET /stats': { status: 400, reason: REASONS.notAnOperator },
      'admin GET /stats?token=': { status: 400, reason: REASONS.notAnOperator },
      'admin GET /stats, Bearer': { status: 400, reason: REASONS.notAnOperator },
      'admin POST /v1/publish, Bearer': { status: 400, reason: REASONS.consumerAsProducer },
    },
  ],
  [
    'an operator token that carries userId',
    () => roleTokens.operatorWithUserId(),
    {
      'producer auth (TCP)': { status: 401, reason: REASONS.consumerAsProducer },
      'gateway GET /stats': { status: 400, reason: REASONS.operatorWithUserId },
      'admin GET /stats?token=': { status: 400, reason: REASONS.operatorWithUserId },
      'admin GET /stats, Bearer': { status: 400, reason: REASONS.operatorWithUserId },
      'admin POST /v1/publish, Bearer': { status: 400, reason: REASONS.consumerAsProducer },
    },
  ],
  [
    'a producer token',
    () => roleTokens.producer(),
    {
      'EIO 3 polling handshake': { status: 403, reason: REASONS.notAConsumer },
      'EIO 4 polling handshake': { status: 403, reason: REASONS.notAConsumer },
      'EIO 3 websocket handshake': { status: 400 },
      'EIO 4 websocket handshake': { status: 400 },
      'gateway GET /stats': { status: 400, reason: REASONS.notAnOperator },
      'admin GET /stats?token=': { status: 400, reason: REASONS.notAnOperator },
      'admin GET /stats, Bearer': { status: 400, reason: REASONS.notAnOperator },
    },
  ],
]

const HEADER_SAFE = /^[\x21-\x7e]*$/

test('every entry point refuses every hostile token as documented; the node serves on, untouched', async t => {
  const prefix = uniquePrefix()
  const cli = await startCli(t, {
    workers: 0,
    env: { SNAPPER_REDIS: redis.url, SNAPPER_REDIS_PREFIX: prefix, SNAPPER_TOKEN_SECRETS: SECRET },
  })
  const before = await connectProducer(t, cli.ports.producer, SECRET)
  const victim = connectConsumer('v3 default', cli.ports.gateway, roleTokens.consumer())
  const other = connectConsumer('v4 websocket', cli.ports.gateway, roleTokens.consumer(newUserId()))
  t.teardown(() => [victim, other].forEach(consumer => consumer.close()))
  const [victimId, otherId] = await Promise.all([victim.opened(), other.opened()])
  for (const id of [victimId, otherId]) await call(before.joinRoom('room', id))
  before.sendMessage('room', 'before')
  await Promise.all([victim.waitFor(1), other.waitFor(1)])

  for (const [what, token, reason] of hostileTokens())
    for (const entry of ENTRY_POINTS) {
      if (entry.isHeader && !HEADER_SAFE.test(token)) continue
      t.deepEqual(await entry.ask(cli, token), entry.bad(reason, token), `${entry.name}: ${what}`)
    }
  for (const [what, token, answers] of ROLE_CASES)
    for (const entry of ENTRY_POINTS) {
      const expected = answers[entry.name]
      if (expected) t.deepEqual(await entry.ask(cli, token()), expected, `${entry.name}: ${what}`)
    }

  // The cookie attack: a polling handshake of another user naming the victim's consumer.
  const victimRooms = new Keys(prefix).consumer(victimId).rooms
  const redisClient = redis.client()
  t.teardown(() => redisClient.quit())
  const attacker = await fetch(
    `http://127.0.0.1:${cli.ports.gateway}/websocket/?EIO=3&transport=polling&token=${roleTokens.consumer(newUserId())}`,
    { headers: { cookie: `snapper.ws=${victimId}` } },
  )
  t.is(attacker.status, 200)
  t.true((await redisClient.ttl(victimRooms)) > 3600, "the victim's consumer keeps its life")

  // Nothing was published, stored or joined by the refused tokens.
  t.deepEqual(await redisClient.xrange(new Keys(prefix).room('stolen').log, '-', '+'), [])

  // Served on: the producer and consumers from before, and new ones.
  const after = await connectProducer(t, cli.ports.producer, SECRET)
  const newcomer = connectConsumer('v4 default', cli.ports.gateway, roleTokens.consumer(newUserId()))
  t.teardown(() => newcomer.close())
  await call(after.joinRoom('room', await newcomer.opened()))
  before.sendMessage('room', 'after, from the old producer')
  await call(after.request('publish', ['room', 'after, from a new one']))
  await Promise.all([victim.waitFor(3), other.waitFor(3), newcomer.waitFor(2)])
  t.deepEqual(victim.messages, ['before', 'after, from the old producer', 'after, from a new one'])
  t.deepEqual(other.messages, victim.messages)
  t.is(cli.child.exitCode, null, 'the process is alive')
  const errors = cli
    .output()
    .split('\n')
    .filter(line => /"level":(50|60)/.test(line))
  t.deepEqual(errors, [], 'no error logged: no handler failed, the last resort never ran')
})

test('the last resort: an exception no handler caught is logged as fatal, and the node drains and exits 1', async t => {
  const plantedBug = fileURLToPath(new URL('planted-bug.js', import.meta.url))
  const cli = await startCli(t, {
    workers: 0,
    env: {
      SNAPPER_REDIS: redis.url,
      SNAPPER_REDIS_PREFIX: uniquePrefix(),
      SNAPPER_TOKEN_SECRETS: SECRET,
      SNAPPER_LOG_LEVEL: 'info',
      NODE_OPTIONS: `--import=${plantedBug}`,
    },
  })
  cli.signal('SIGUSR2')
  t.is(await cli.exited, 1)
  const lines = cli
    .output()
    .split('\n')
    .flatMap(line =>
      line.startsWith('{')
        ? [JSON.parse(line) as { level: number; time: number; msg: string; err?: { message: string } }]
        : [],
    )
  const fatal = lines.find(line => line.level === 60)
  t.like(fatal, {
    msg: 'uncaught exception: draining, then exiting 1',
    err: { message: 'planted bug' },
  })
  // By time, not by place: once in CI (a loaded machine) the fatal line, logged first and stamped
  // so, was printed after the drain's lines (pino writes asynchronously; not reproduced at will).
  t.true(
    lines.some(line => line.msg === 'node stopped' && line.time >= fatal!.time),
    `drained: every consumer closed, every message stored, Redis closed\n${cli.output()}`,
  )
})
