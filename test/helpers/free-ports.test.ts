/**
 * The helpers that start servers on ports they choose (redis-server, Redis
 * Cluster, nginx, the CLI) when the chosen port is taken between the choice
 * and the bind, as another test file or an outgoing connection may do: each
 * notices the failed bind at once and starts again on another port.
 */
import { createServer, type Server } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { TEST_SECRET } from './broker.js'
import { startCli } from './cli.js'
import { startNginx } from './nginx.js'
import { freePort, freePorts, type PortChooser } from './ports.js'
import { clusterPort, startRedisCluster } from './redis-cluster.js'
import { startRedis } from './redis.js'
import { eventWithin } from './eventually.js'

/** Takes `port` away (a listener of ours on it) until the test ends. */
async function occupy(t: ExecutionContext, port: number): Promise<void> {
  const blocker: Server = createServer().listen(port, '127.0.0.1')
  await eventWithin(blocker, 'listening')
  t.teardown(() => blocker.close())
}

/**
 * A chooser whose first choices are taken right after they are made; `take`
 * says which port of a choice to take (a cluster node's bus port, port + 10000).
 */
function takenFirst(
  t: ExecutionContext,
  takes: ((port: number) => number)[],
  choose: PortChooser = freePort,
): { choosePort: PortChooser; taken: number[] } {
  const taken: number[] = []
  const choosePort = async (): Promise<number> => {
    const port = await choose()
    const take = takes.shift()
    if (take) {
      await occupy(t, take(port))
      taken.push(port)
    }
    return port
  }
  return { choosePort, taken }
}

const itself = (port: number): number => port

test('redis-server starts on another port when its port is taken', async t => {
  const { choosePort, taken } = takenFirst(t, [itself, itself])
  const started = Date.now()
  const server = await startRedis([], { choosePort })
  t.teardown(() => server.stop())
  t.true(Date.now() - started < 3000, 'the failed binds are noticed at once')
  t.is(taken.length, 2)
  t.false(taken.includes(server.port))
  t.is(await server.client().ping(), 'PONG')
})

test('a Redis Cluster node starts on another port when its port or its bus port is taken', async t => {
  const { choosePort, taken } = takenFirst(t, [itself, port => port + 10000], clusterPort)
  const started = Date.now()
  const cluster = await startRedisCluster({ choosePort })
  t.teardown(() => cluster.stop())
  t.is(taken.length, 2)
  t.is(cluster.nodes.length, 6)
  for (const node of cluster.nodes) t.false(taken.includes(node.port))
  await cluster.client().set('k', 'v')
  t.is(await cluster.client().get('k'), 'v')
  t.true(Date.now() - started < 20_000, `started in ${Date.now() - started} ms, not after a 30 s wait`)
})

test('nginx starts on another port when its port is taken', async t => {
  const { choosePort, taken } = takenFirst(t, [itself])
  const started = Date.now()
  const nginx = await startNginx(await freePort(), 1, { choosePort })
  t.teardown(() => nginx.stop())
  // nginx itself gives up on a taken port only after retrying for 2.5 s.
  t.true(Date.now() - started < 2500, `started in ${Date.now() - started} ms: not after nginx's own retries`)
  t.not(nginx.port, taken[0])
  const response = await fetch(`http://127.0.0.1:${nginx.port}/`)
  t.regex(response.headers.get('server') ?? '', /^nginx/)
})

test('snapper start runs again on other ports when one it was given is taken', async t => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  // The first choice is the gateway's pair of ports, the second the producer port.
  const { choosePort, taken } = takenFirst(t, [itself, itself])
  const cli = await startCli(t, {
    workers: 2,
    env: { SNAPPER_REDIS: redis.url, SNAPPER_TOKEN_SECRETS: TEST_SECRET },
    choosePort,
  })
  t.false(taken.includes(cli.ports.gateway))
  t.false(taken.includes(cli.ports.producer))
  t.is((await fetch(`http://127.0.0.1:${cli.ports.admin}/readyz`)).status, 200)
  cli.signal('SIGTERM')
  t.is(await cli.exited, 0, cli.output())
})

test('a run of ports for several workers is never handed out again, in part', async t => {
  // A CLI with 2 workers took the gateway run [taken, taken + 1]; its admin port once landed on taken + 1.
  const taken = await freePorts(2)
  const offers = [taken - 1, taken] // runs that would end inside it
  const first = await freePorts(2, async () => offers.shift() ?? freePort())
  t.false(
    [first, first + 1].some(port => port === taken || port === taken + 1),
    `${first} vs ${taken}`,
  )
})
