/**
 * A node (the real CLI, --workers 0) under a low open-files limit, its
 * gateway port flooded with TCP connections that send nothing, twice as many
 * as the process may hold files (an attacker, or a spike of clients). The node must
 * stay up and keep files for what already runs and for its other ports: a
 * consumer opened before keeps receiving, in order; publishes are stored and
 * answered, also over a new producer connection and after its Redis
 * connections were cut (a reconnect needs a new socket); /healthz answers;
 * and once the flood is gone, new consumers connect again. While its files
 * are short, a flood of new producer and admin connections is closed at once
 * past half the reserve, and counted (README, "Limits and bad input", Open
 * files).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { Tokens } from '../../src/auth/token.js'
import { call, connectProducer, newUserId, TEST_SECRET } from '../helpers/broker.js'
import { isAlive, startCli } from '../helpers/cli.js'
import { connectConsumer } from '../helpers/consumers.js'
import { eventually, pause, within } from '../helpers/eventually.js'
import { sample } from '../admin/harness.js'
import { startRedis, uniquePrefix, type RedisServer } from '../helpers/redis.js'

/** The node's open-files limit: a few hundred, so that the test's flood reaches it in a moment. */
const OPEN_FILES_LIMIT = 300
/** The node's openFilesReserve: under a quarter of the limit. */
const RESERVE = 60

let server: RedisServer
test.before(async () => {
  server = await startRedis()
})
test.after.always(() => server?.stop())

const tokens = new Tokens([TEST_SECRET])

/** Files process `pid` holds open now. */
const openFilesOf = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

/** CPU time process `pid` has used, in ms (utime + stime, in clock ticks of 10 ms). */
function cpuMsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/**
 * Holds `size` TCP connections to `port` that send nothing; one that closes
 * (the node cut it, or refused it) is opened again a moment later, until stop().
 */
function flood(port: number, size: number): { readonly connected: number; stop(): void } {
  const sockets = new Set<Socket>()
  let isFlooding = true
  let connected = 0
  const open = (): void => {
    const socket = connect(port, '127.0.0.1')
    sockets.add(socket)
    socket.once('connect', () => connected++)
    socket.on('error', () => {}) // refused or reset: the close below opens another
    socket.once('close', () => {
      sockets.delete(socket)
      if (isFlooding) setTimeout(open, 200)
    })
  }
  for (let i = 0; i < size; i++) open()
  return {
    get connected() {
      return connected
    },
    stop() {
      isFlooding = false
      for (const socket of sockets) socket.destroy()
    },
  }
}

/**
 * The CLI under OPEN_FILES_LIMIT (openFilesReserve RESERVE), with a consumer and a producer connected
 * before anything else and one message, 'before', delivered.
 */
async function startNodeWithClients(t: ExecutionContext, env: Record<string, string> = {}) {
  const cli = await startCli(t, {
    workers: 0,
    openFilesLimit: OPEN_FILES_LIMIT,
    env: {
      SNAPPER_REDIS: server.url,
      SNAPPER_REDIS_PREFIX: uniquePrefix(),
      SNAPPER_TOKEN_SECRETS: TEST_SECRET,
      SNAPPER_MAX_SESSIONS: '100',
      SNAPPER_OPEN_FILES_RESERVE: String(RESERVE),
      ...env,
    },
  })
  const userId = newUserId()
  const room = `user${userId}`
  const consumer = connectConsumer('v4 websocket', cli.ports.gateway, tokens.sign({ userId }))
  t.teardown(() => consumer.close())
  await consumer.opened()
  const producer = await connectProducer(t, cli.ports.producer)
  await call(producer.request('publish', [room, 'before']))
  await consumer.waitFor(1)
  return { cli, room, consumer, producer }
}

test('a flood of idle gateway connections past the open-files limit: the node serves on, then recovers', async t => {
  const { cli, room, consumer, producer } = await startNodeWithClients(t, { SNAPPER_LOG_LEVEL: 'info' })
  const pid = cli.child.pid!
  const filesBefore = openFilesOf(pid)

  const attack = flood(cli.ports.gateway, 2 * OPEN_FILES_LIMIT)
  t.teardown(() => attack.stop())
  // The node has taken what it will take of the flood once its count of files stops growing.
  let files = filesBefore
  await eventually(
    async () => {
      const before = files
      await pause(500)
      files = openFilesOf(pid)
      return files > filesBefore + 100 && files <= before
    },
    { what: () => `the node's open files to stop growing (${files})`, timeoutMs: 15_000 },
  )
  const cpuBefore = cpuMsOf(pid)
  await pause(1000)
  t.log(
    `flooded: ${attack.connected} connections made, the node holds ${openFilesOf(pid)} files ` +
      `(${filesBefore} before, limit ${OPEN_FILES_LIMIT}), used ${cpuMsOf(pid) - cpuBefore} ms of CPU in 1 s`,
  )

  const ready = await fetch(`http://127.0.0.1:${cli.ports.admin}/readyz`)
  t.log(`/readyz during the flood: ${ready.status} ${await ready.text()}`)
  // Redis connections cut: storing the next publish needs a new socket.
  await server.client().call('CLIENT', 'KILL', 'TYPE', 'normal')
  // Without the guard this waited for as long as the flood lasted: Redis could not be reached again (EMFILE).
  await within(
    call(producer.request('publish', [room, 'during, after a Redis reconnect'])),
    20_000,
    'a publish to be stored during the flood, after a Redis reconnect',
  )
  t.log('stored after a Redis reconnect')
  const newcomer = await within(connectProducer(t, cli.ports.producer), 20_000, 'a new producer to connect')
  await within(
    call(newcomer.request('publish', [room, 'during, from a new producer connection'])),
    20_000,
    'a new producer connection to publish during the flood',
  )
  t.log('stored from a new producer connection')
  const health = await fetch(`http://127.0.0.1:${cli.ports.admin}/healthz`)
  t.is(health.status, 200)
  await consumer.waitFor(3)
  t.deepEqual(consumer.messages, [
    'before',
    'during, after a Redis reconnect',
    'during, from a new producer connection',
  ])
  t.true(isAlive(pid))

  attack.stop()
  // The node's files come back as the flood's connections close (uWS cuts those it took within about 10 s).
  const later = await eventually(
    async () => {
      const consumer = connectConsumer(
        'v4 websocket',
        cli.ports.gateway,
        tokens.sign({ userId: newUserId() }),
      )
      t.teardown(() => consumer.close())
      return consumer.opened().then(
        () => consumer,
        () => (consumer.close(), undefined), // refused while the node's files are short: again
      )
    },
    { what: 'a new consumer to connect after the flood', timeoutMs: 20_000, everyMs: 200 },
  )
  t.truthy(later.id)
  t.is((await fetch(`http://127.0.0.1:${cli.ports.admin}/readyz`)).status, 200)
  await call(producer.request('publish', [room, 'after']))
  await consumer.waitFor(4)
  t.is(consumer.messages.at(-1), 'after')
  t.true(isAlive(pid))
  const lines = cli
    .output()
    .split('\n')
    .filter(line => /open files|EMFILE/i.test(line))
  t.log(`${lines.length} log lines on open files:\n${lines.slice(0, 6).join('\n')}`)
  t.true(
    lines.some(line => line.includes('open files exhausted')),
    'a warning says the files ran out',
  )
})

/**
 * Holds `size` TCP connections to `port` that send nothing, and counts those
 * the node closed (all of them unanswered: the test's timeouts are longer than it).
 */
function idleConnections(port: number, size: number): { readonly closed: number; stop(): void } {
  const sockets = Array.from({ length: size }, () => connect(port, '127.0.0.1'))
  let closed = 0
  let isStopped = false
  for (const socket of sockets) {
    socket.on('error', () => {}) // reset by the node: counted at close
    socket.once('close', () => isStopped || closed++)
  }
  return {
    get closed() {
      return closed
    },
    stop() {
      isStopped = true
      for (const socket of sockets) socket.destroy()
    },
  }
}

test('while its files are short, new producer and admin connections past half the reserve are closed at once and counted; one opened before publishes on', async t => {
  // Apart from the open files, no bound of theirs closes the test's idle connections.
  const { cli, room, consumer, producer } = await startNodeWithClients(t, {
    SNAPPER_MAX_UNAUTHENTICATED_PRODUCERS_PER_ADDRESS: '1000',
    SNAPPER_PRODUCER_AUTH_TIMEOUT_MS: '120000',
    SNAPPER_ADMIN_REQUEST_TIMEOUT_MS: '120000',
  })

  const attack = flood(cli.ports.gateway, 2 * OPEN_FILES_LIMIT)
  t.teardown(() => attack.stop())
  const admin = `http://127.0.0.1:${cli.ports.admin}`
  await eventually(
    () =>
      fetch(`${admin}/readyz`).then(
        async response => (await response.text()).includes('open files exhausted'),
        () => false, // refused while the reserve is low: again
      ),
    { what: 'the node to say its open files are exhausted', timeoutMs: 20_000, everyMs: 100 },
  )
  // Both floods at once: each connection admitted takes one of the reserve's files.
  const producers = idleConnections(cli.ports.producer, 100)
  const admins = idleConnections(cli.ports.admin, 80)
  t.teardown(() => (producers.stop(), admins.stop()))
  await eventually(() => producers.closed >= 50 && admins.closed >= 40, {
    what: () =>
      `most of them to be closed (producer ${producers.closed} of 100, admin ${admins.closed} of 80)`,
    timeoutMs: 20_000,
  })
  await within(
    call(producer.request('publish', [room, 'during the floods'])),
    20_000,
    'a publish over the producer connection opened before',
  )
  await consumer.waitFor(2)
  t.deepEqual(consumer.messages, ['before', 'during the floods'])
  const closed = { producer: producers.closed, admin: admins.closed }
  producers.stop()
  admins.stop()
  t.log(`closed at once: ${closed.producer} of 100 producer, ${closed.admin} of 80 admin connections`)

  const metrics = await eventually(
    () =>
      fetch(`${admin}/metrics`).then(
        response => response.text(),
        () => undefined, // refused until the guard counts the files the floods gave back
      ),
    { what: 'an answer from /metrics', timeoutMs: 20_000, everyMs: 100 },
  )
  const refusedAdmin = sample(metrics, 'snapper_admin_refused_total{reason="openFilesReserve"}') ?? 0
  const refused = sample(metrics, 'snapper_open_files_refused_total') ?? 0
  t.log(`snapper_open_files_refused_total ${refused}, of them admin ${refusedAdmin}`)
  // Every connection the test saw closed was refused (its probes refused meanwhile count too).
  t.true(refusedAdmin >= closed.admin, `admin refusals ${refusedAdmin} >= ${closed.admin}`)
  t.true(
    refused >= closed.producer + refusedAdmin,
    `refusals ${refused} >= ${closed.producer} + ${refusedAdmin}`,
  )
  t.true((sample(metrics, 'snapper_open_files_exhausted_total') ?? 0) >= 1)
  t.true(isAlive(cli.child.pid!))
})
