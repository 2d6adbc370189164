import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster, Redis } from 'ioredis'
import type { RedisTarget } from '../../src/config/defaults.js'
import { slotOf } from '../../src/redis/slot.js'
import { BIND_FAILED, freePort, isFree, PortTaken, startOnFreePorts, type PortChooser } from './ports.js'
import { waitForRedis } from './redis.js'
import { eventually, pause, within } from './eventually.js'
import { dieWithThisProcess } from './watchdog.js'

const run = promisify(execFile)

export interface ClusterNodeInfo {
  readonly port: number
  /** `127.0.0.1:port`, as the cluster announces it. */
  readonly address: string
}

export interface RedisCluster {
  /** Every node's address (masters and replicas): the seed list a broker is given. */
  readonly nodes: readonly ClusterNodeInfo[]
  readonly target: RedisTarget
  /** A cluster client for assertions; closed by stop(). */
  client(): Cluster
  /** A plain connection to one node (CLIENT KILL, INFO); closed by stop(). */
  nodeClient(port: number): Redis
  /** The node that serves a slot (or a key's slot) now. */
  masterOf(slotOrKey: number | string): Promise<ClusterNodeInfo>
  /**
   * SIGKILLs the master that serves the slot (or the key's slot) and resolves
   * once one of its replicas has taken over: the cluster is ok again on every
   * live node, and every live node names the new master for that slot.
   */
  killMaster(slotOrKey: number | string): Promise<{ killed: ClusterNodeInfo; promoted: ClusterNodeInfo }>
  /**
   * Starts an empty master and adds it to the cluster (`redis-cli --cluster
   * add-node`, as an operator adds capacity), with `replicas` replicas of its
   * own (`--cluster-slave`); resolves once every node knows them and each
   * replica is in sync. It serves no slot until moveSlot gives it some.
   */
  addMaster(replicas?: number): Promise<ClusterNodeInfo>
  /**
   * Moves a slot to the master `to` as `redis-cli --cluster reshard` does
   * (IMPORTING on `to`, MIGRATING on its owner, MIGRATE key by key, then
   * SETSLOT NODE on `to`, the owner and every other master), pausing
   * `keyPauseMs` after each key so that traffic meets the slot half moved
   * (ASK, TRYAGAIN). Resolves with the master that served it before.
   */
  moveSlot(slot: number, to: ClusterNodeInfo, keyPauseMs?: number): Promise<ClusterNodeInfo>
  /** Kills every node and removes their directories. */
  stop(): Promise<void>
}

export interface ClusterOptions {
  /** cluster-node-timeout: how long a master may be silent before it is failed over, in ms. @default 1000 */
  readonly nodeTimeoutMs?: number
  /** Replicas of each of the 3 masters; 2 leave the promoted one a replica of its own. @default 1 */
  readonly replicasPerMaster?: number
  /** Chooses each node's port; its bus port is port + 10000. @default a free pair */
  readonly choosePort?: PortChooser
  /** `requirepass` (and `masterauth`) of every node; `target` then carries it in its URLs. @default none */
  readonly password?: string
}

/**
 * Starts a Redis Cluster of 3 masters with one replica each (or more), on free ports
 * (each node's bus port, port + 10000, free too), every node in its own
 * directory with its own cluster-config-file and no persistence. Resolves once
 * every node says `cluster_state:ok` and every replica is in sync with its
 * master. One per test file: start it in `test.before`, stop it in
 * `test.after.always`, and give every test its own key prefix.
 */
export async function startRedisCluster({
  nodeTimeoutMs = 1000,
  replicasPerMaster = 1,
  choosePort = clusterPort,
  password,
}: ClusterOptions = {}): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'snapper-cluster-'))
  const children = new Map<number, ChildProcess>()
  const clients: (Redis | Cluster)[] = []
  let size = 3 * (1 + replicasPerMaster)
  const nodes: ClusterNodeInfo[] = []
  const admins = new Map<number, Redis>()
  /** One plain connection per node, made again once it has ended (a node that was not up yet). */
  const admin = (port: number): Redis => {
    const current = admins.get(port)
    if (current && current.status !== 'end') return current
    const client = new Redis(port, '127.0.0.1', {
      password,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    client.on('error', () => {}) // a killed node: its commands reject, which the callers handle
    clients.push(client)
    admins.set(port, client)
    return client
  }
  const stop = async (): Promise<void> => {
    for (const client of clients) client.disconnect()
    await Promise.all([...children.values()].map(child => killChild(child)))
    rmSync(dir, { recursive: true, force: true })
  }

  /** One node on a port of its own (another one when its port or bus port was taken). */
  const startNode = (): Promise<ClusterNodeInfo> =>
    startOnFreePorts(async () => {
      const port = await choosePort()
      const logFile = join(dir, `${port}.log`)
      const child = spawnNode([
        ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir],
        ...['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`],
        ...['--cluster-node-timeout', String(nodeTimeoutMs)],
        // A replica fails over however long it was cut off: the tests decide when a master dies.
        ...['--cluster-replica-validity-factor', '0'],
        ...['--save', '', '--appendonly', 'no'],
        // Full syncs start at once instead of after Redis's 5 s diskless-sync delay.
        ...['--repl-diskless-sync-delay', '0'],
        // CLUSTER SLOTS lists a replica once its offset moved: the master's pings move it, every 1 s, not 10.
        ...['--repl-ping-replica-period', '1'],
        ...['--logfile', logFile],
        ...(password === undefined ? [] : ['--requirepass', password, '--masterauth', password]),
      ])
      children.set(port, child)
      const exited = new Promise<never>((_, reject) =>
        child.once('exit', code => {
          const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''
          reject(
            BIND_FAILED.test(log)
              ? new PortTaken('Redis Cluster node', port)
              : new Error(`Redis Cluster node ${port} exited with ${code}: ${log.slice(-500)}`),
          )
        }),
      )
      exited.catch(() => {}) // observed through the race while starting; later exits are killMaster's
      try {
        await Promise.race([waitForRedis(port, child, password), exited])
      } catch (err) {
        await killChild(child)
        children.delete(port)
        throw err
      }
      return { port, address: `127.0.0.1:${port}` }
    })

  try {
    const started = await Promise.allSettled(Array.from({ length: size }, startNode))
    for (const result of started) if (result.status === 'rejected') throw result.reason
    for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value)
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map(n => n.address),
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ],
      {
        timeout: 30_000,
        // redis-cli reads the password there without a warning on the command line.
        env: { ...process.env, ...(password !== undefined && { REDISCLI_AUTH: password }) },
      },
    )
    const everyone = nodes.map(({ port }) => admin(port))
    const isSettled = async (): Promise<boolean> =>
      (await Promise.all(everyone.map(client => isHealthy(client, size)))).every(Boolean)
    // A node still starting may not answer: not yet.
    await eventually(() => isSettled().catch(() => false), {
      what: 'cluster ok and replicas in sync',
      ...SETTLING,
    })
  } catch (err) {
    await stop()
    throw err
  }

  const live = (): Redis[] =>
    nodes.filter(({ port }) => isRunning(children.get(port))).map(({ port }) => admin(port))
  const byAddress = (address: string): ClusterNodeInfo => {
    const node = nodes.find(n => n.address === address)
    if (!node) throw new Error(`unknown cluster node ${address}`)
    return node
  }
  const masterOf = async (slotOrKey: number | string): Promise<ClusterNodeInfo> => {
    const slot = typeof slotOrKey === 'number' ? slotOrKey : slotOf(slotOrKey)
    const [first] = live()
    if (!first) throw new Error('no live cluster node')
    const owner = ownerOf(await clusterSlots(first), slot)
    if (!owner) throw new Error(`no node serves slot ${slot}`)
    return byAddress(owner.master)
  }

  return {
    nodes,
    target: {
      kind: 'cluster',
      nodes: nodes.map(n => (password === undefined ? n.address : `redis://:${password}@${n.address}`)),
    },
    client() {
      const client = new Cluster(
        nodes.map(({ port }) => ({ host: '127.0.0.1', port })),
        { redisOptions: { maxRetriesPerRequest: 1, password } },
      )
      client.on('error', () => {}) // assertions see failures through rejected commands
      clients.push(client)
      return client
    },
    nodeClient: admin,
    masterOf,
    async killMaster(slotOrKey) {
      const slot = typeof slotOrKey === 'number' ? slotOrKey : slotOf(slotOrKey)
      const [first] = live()
      if (!first) throw new Error('no live cluster node')
      const owner = ownerOf(await clusterSlots(first), slot)
      if (!owner) throw new Error(`no node serves slot ${slot}`)
      const killed = byAddress(owner.master)
      // Its replicas by their own word (ROLE), not by some node's gossip.
      const replicas: string[] = []
      for (const node of nodes) {
        const [name, host, port] = (await admin(node.port).call('ROLE')) as [string, string, number]
        if (name === 'slave' && `${host}:${port}` === killed.address) replicas.push(node.address)
      }
      if (replicas.length === 0) throw new Error(`${killed.address} (slot ${slot}) has no replica`)
      await killChild(children.get(killed.port))
      /** The replica that serves the slot, once every survivor says so. */
      const promotion = async (): Promise<ClusterNodeInfo | false> => {
        const survivors = live()
        const views = await Promise.all(
          survivors.map(async client => ({
            info: await clusterInfo(client),
            slots: await clusterSlots(client),
          })),
        )
        const masters = new Set(views.map(view => ownerOf(view.slots, slot)?.master))
        const [master] = masters
        if (masters.size !== 1 || !master || !replicas.includes(master)) return false
        if (!views.every(view => view.info.includes('cluster_state:ok'))) return false
        const promoted = byAddress(master)
        return (await role(admin(promoted.port))) === 'master' && promoted
      }
      // A node mid-failover may not answer: not yet.
      const promoted = await eventually(() => promotion().catch(() => false as const), {
        what: `a replica of ${killed.address} serving slot ${slot}`,
        ...SETTLING,
      })
      return { killed, promoted }
    },
    async addMaster(replicas = 0) {
      const env = { ...process.env, ...(password !== undefined && { REDISCLI_AUTH: password }) }
      const node = await startNode()
      nodes.push(node)
      size++
      await run('redis-cli', ['--cluster', 'add-node', node.address, nodes[0]!.address], {
        timeout: 30_000,
        env,
      })
      const knowsAll = async (client: Redis): Promise<boolean> => {
        const info = await clusterInfo(client)
        return info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${size}\r`)
      }
      const settled = (what: string, isSynced: (client: Redis) => Promise<boolean> = async () => true) =>
        eventually(
          async () =>
            (
              await Promise.all(
                live().map(client =>
                  knowsAll(client)
                    .then(async known => known && (await isSynced(client)))
                    .catch(() => false),
                ),
              )
            ).every(Boolean),
          { what, ...SETTLING },
        )
      await settled(`every node knowing ${node.address}`)
      if (replicas === 0) return node
      const id = (await admin(node.port).call('CLUSTER', 'MYID')) as string
      const added: number[] = []
      for (let i = 0; i < replicas; i++) {
        const replica = await startNode()
        nodes.push(replica)
        added.push(replica.port)
        size++
        await run(
          'redis-cli',
          [
            '--cluster',
            'add-node',
            replica.address,
            nodes[0]!.address,
            '--cluster-slave',
            '--cluster-master-id',
            id,
          ],
          { timeout: 30_000, env },
        )
      }
      await settled(`every node knowing the replicas of ${node.address}, in sync`, async client => {
        const port = client.options.port
        if (port === undefined || !added.includes(port)) return true
        const replication = await client.info('replication')
        return (
          replication.includes('master_link_status:up') && replication.includes('master_sync_in_progress:0')
        )
      })
      return node
    },
    async moveSlot(slot, to, keyPauseMs = 0) {
      const from = await masterOf(slot)
      if (from.port === to.port) return from
      const source = admin(from.port)
      const target = admin(to.port)
      const idOf = async (client: Redis): Promise<string> => (await client.call('CLUSTER', 'MYID')) as string
      const [sourceId, targetId] = await Promise.all([idOf(source), idOf(target)])
      await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId)
      await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId)
      const auth = password === undefined ? [] : ['AUTH', password]
      for (;;) {
        const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 1)) as string[]
        if (keys.length === 0) break
        await source.call('MIGRATE', '127.0.0.1', to.port, '', 0, 5000, ...auth, 'KEYS', ...keys)
        if (keyPauseMs > 0) await pause(keyPauseMs)
      }
      // As redis-cli: the target first (it stops answering ASK), then the source, then the others.
      const masters: Redis[] = []
      for (const client of live()) if ((await role(client)) === 'master') masters.push(client)
      const rest = masters.filter(client => client !== source && client !== target)
      for (const client of [target, source, ...rest])
        await client.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
      return from
    },
    stop,
  }
}

/**
 * The first `count` of the names `<prefix>-0`, `<prefix>-1`, ... whose keys
 * (`keyOf`) live on the master that serves `<prefix>-0`'s: rooms a failover
 * of that one master hits together.
 */
export async function namesOnOneMaster(
  cluster: RedisCluster,
  prefix: string,
  count: number,
  keyOf: (name: string) => string,
): Promise<string[]> {
  const master = await cluster.masterOf(keyOf(`${prefix}-0`))
  const names: string[] = []
  for (let i = 0; names.length < count; i++) {
    const name = `${prefix}-${i}`
    if ((await cluster.masterOf(keyOf(name))).port === master.port) names.push(name)
  }
  return names
}

/**
 * Starts redis-server. Its output goes to its log file: ava waits for the end
 * of a test process's stderr, which a node must not hold.
 */
function spawnNode(args: string[]): ChildProcess {
  return dieWithThisProcess(spawn('redis-server', args, { stdio: 'ignore' }))
}

/** A free port whose cluster bus port (port + 10000) is free too. */
export async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (await isFree(port + 10000)) return port
  }
}

const isRunning = (child: ChildProcess | undefined): child is ChildProcess =>
  !!child && child.exitCode === null && child.signalCode === null

function killChild(child: ChildProcess | undefined): Promise<void> {
  if (!isRunning(child)) return Promise.resolve()
  return within(
    new Promise(resolve => {
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    }),
    10_000,
    `Redis Cluster node ${child.pid} to exit on SIGKILL`,
  )
}

/**
 * A node reports cluster_state:ok, knows every node, and lists every master's
 * replicas in CLUSTER SLOTS; a replica, that its link is up and synced.
 */
async function isHealthy(client: Redis, size: number): Promise<boolean> {
  const info = await clusterInfo(client)
  if (!info.includes('cluster_state:ok') || !info.includes(`cluster_known_nodes:${size}\r`)) return false
  const listed = (await clusterSlots(client)).reduce((sum, range) => sum + range.length - 2, 0)
  if (listed < size) return false // every master and replica in some range (3 ranges when fresh)
  const replication = await client.info('replication')
  if (!replication.includes('role:slave')) return true
  return replication.includes('master_link_status:up') && replication.includes('master_sync_in_progress:0')
}

const clusterInfo = (client: Redis): Promise<string> => client.call('CLUSTER', 'INFO') as Promise<string>

async function role(client: Redis): Promise<string> {
  const [name] = (await client.call('ROLE')) as [string]
  return name
}

type SlotRange = [number, number, [string, number, ...unknown[]], ...[string, number, ...unknown[]][]]

async function clusterSlots(client: Redis): Promise<SlotRange[]> {
  return (await client.call('CLUSTER', 'SLOTS')) as SlotRange[]
}

function ownerOf(ranges: SlotRange[], slot: number): { master: string; replicas: string[] } | undefined {
  const range = ranges.find(([from, to]) => from <= slot && slot <= to)
  if (!range) return undefined
  const [, , master, ...replicas] = range
  return { master: `${master[0]}:${master[1]}`, replicas: replicas.map(([host, port]) => `${host}:${port}`) }
}

/** How long the cluster may take to settle (create, failover), polled every 50 ms. */
const SETTLING = { timeoutMs: 30_000, everyMs: 50 } as const
