/**
 * Whether Redis answers now: a PING with a short timeout of its own (the
 * clients have no commandTimeout: their commands wait through an outage). On
 * a cluster, every master the client knows, each named in the answer: one
 * shard down stalls what needs its slots, not the others (docs/RELIABILITY.md,
 * "One stalled master"). /readyz and each node's watchdog ask.
 * The PING goes on a connection of its own (RedisClients.pingConnectionsOf),
 * not behind the commands' backlog: a busy Redis answers it, one that hangs
 * does not. On a cluster each master is also asked its cluster_state: one
 * that says `fail` answers PING yet refuses every key command (CLUSTERDOWN),
 * so it counts as not answering (docs/RELIABILITY.md, "A Redis Cluster that
 * is down").
 */
import type { Cluster, Redis } from 'ioredis'
import type { RedisClients } from './connect.js'

/** A PING slower than this counts as Redis being unavailable, in ms. */
export const REDIS_PING_TIMEOUT_MS = 1000

/** What one round of PINGs found. */
export interface RedisHealth {
  /** Why Redis cannot serve now (the first problem found), or undefined when everything answers. */
  readonly problem: string | undefined
  /** Every problem found: on a cluster, one per master that does not answer. */
  readonly problems: readonly string[]
  /**
   * On a cluster, the masters (`host:port`, as its slot map names them) that
   * did not answer; empty on one Redis, and when the cluster client itself
   * is not ready (then `problem` says so and nothing is known per master).
   */
  readonly mastersDown: readonly string[]
  /** The same masters, each with why it does not serve (its entry in `problems`). */
  readonly masterProblems: ReadonlyMap<string, string>
  /** Whether some master answered: false on one Redis that does not, and on a cluster none of whose masters does. */
  readonly isAnyAnswering: boolean
}

/** Why Redis cannot serve now, or undefined. Never queues a command while a connection is down. */
export async function redisProblem(
  redis: Pick<RedisClients, 'commands' | 'isCluster' | 'pingConnectionsOf'>,
  timeoutMs = REDIS_PING_TIMEOUT_MS,
): Promise<string | undefined> {
  return (await redisHealth(redis, timeoutMs)).problem
}

/** What Redis answers now, master by master on a cluster. Never queues a command while a connection is down. */
export async function redisHealth(
  redis: Pick<RedisClients, 'commands' | 'isCluster' | 'pingConnectionsOf'>,
  timeoutMs = REDIS_PING_TIMEOUT_MS,
): Promise<RedisHealth> {
  const { commands, isCluster } = redis
  const down = (problem: string): RedisHealth => ({
    problem,
    problems: [problem],
    mastersDown: [],
    masterProblems: new Map(),
    isAnyAnswering: false,
  })
  if (commands.status !== 'ready') return down(`redis: connection ${commands.status}`)
  // A cluster's PING goes to any one node: ask each master instead (a lost one stays listed until
  // its replica takes over, which the next slot map shows).
  const servers = isCluster ? (commands as Cluster).nodes('master') : [commands as Redis]
  const own = redis.pingConnectionsOf(servers)
  const answers = await Promise.all(
    servers.map(async (server, i) => {
      const address = `${server.options.host}:${server.options.port}`
      // Until its own connection is ready (made, or made again after an outage): the server's.
      const name = isCluster ? `redis master ${address}` : 'redis'
      return { address, problem: await pingProblem(own[i] ?? server, name, timeoutMs, isCluster) }
    }),
  )
  const failed = answers.filter(answer => answer.problem !== undefined)
  const problems = failed.map(answer => answer.problem as string)
  return {
    problem: problems[0],
    problems,
    mastersDown: isCluster ? failed.map(answer => answer.address) : [],
    masterProblems: new Map(
      isCluster ? failed.map(answer => [answer.address, answer.problem as string]) : [],
    ),
    isAnyAnswering: failed.length < answers.length,
  }
}

/** Why a master that answers still refuses key commands: its view of the cluster says it is down. */
function clusterStateProblem(info: unknown, name: string): string | undefined {
  const state = /cluster_state:(\w+)/.exec(String(info))?.[1]
  return state === undefined || state === 'ok'
    ? undefined
    : `${name}: cluster_state ${state} (the cluster refuses commands)`
}

async function pingProblem(
  server: Redis,
  name: string,
  timeoutMs: number,
  isClusterNode: boolean,
): Promise<string | undefined> {
  // The offline queue would hold a PING until the server is back: ask only a ready connection, or one
  // not made yet (a cluster connects to a node on its first command; the PING makes it).
  if (server.status !== 'ready' && server.status !== 'wait') return `${name}: connection ${server.status}`
  let timer: NodeJS.Timeout | undefined
  let turn: NodeJS.Immediate | undefined
  const timeout = new Promise<string>(resolve => {
    // Decided only after the sockets were read once more: a node whose event loop was busy past the
    // timeout (Node runs due timers before it reads) would else take an answer waiting there for none.
    timer = setTimeout(() => {
      turn = setImmediate(() => resolve(`${name}: no PING answer within ${timeoutMs} ms`))
    }, timeoutMs)
  })
  try {
    // Sent together on the one connection: CLUSTER INFO costs no more round trip than the PING.
    const state = isClusterNode ? server.call('CLUSTER', 'INFO') : undefined
    state?.catch(() => {}) // a PING that fails says why first; a lone CLUSTER INFO failure is not news
    return await Promise.race([
      server.ping().then(
        async () =>
          state === undefined ? undefined : clusterStateProblem(await state.catch(() => ''), name),
        (err: unknown) => `${name}: PING failed (${(err as Error).message})`,
      ),
      timeout,
    ])
  } finally {
    clearTimeout(timer)
    clearImmediate(turn)
  }
}
