import { Cluster, Redis, ReplyError, type ClusterNode, type RedisOptions } from 'ioredis'
import type { RedisTarget } from '../config/defaults.js'
import { parseRedisNode } from '../config/redis-url.js'
import type { Logger } from '../log.js'
import { dropNow } from './drop.js'
import { createPubSub, type PubSub } from './pubsub.js'
import { followRedirects } from './redirects.js'
import { defineScripts, variadicScripts, type Commands } from './scripts.js'
import { slotOf } from './slot.js'

/** Backoff between reconnects: 50 ms growing to 2 s, for ever (an outage must heal by itself). */
const retryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times, 6), 2000)

const baseOptions: RedisOptions = {
  // Commands wait through an outage instead of failing: nothing accepted is dropped.
  maxRetriesPerRequest: null,
  enableOfflineQueue: true,
  retryStrategy,
  connectTimeout: 5000,
  lazyConnect: true,
  // No CLIENT SETINFO on each connect: cosmetic, and through an outage every reconnect attempt that
  // reaches a proxy (accepted, then cut) would queue two more commands.
  disableClientInfo: true,
}

/**
 * How often a cluster client reads the slot map again, in ms, when nothing
 * told it to (a MOVED reply, a lost node or subscriber do): a backstop for a
 * failover that left the old master up. Each read costs ioredis 5-20 ms of
 * CPU (it maps all 16384 slots), so not every second.
 */
const SLOTS_REFRESH_MS = 5000

/** Parses `host:port` or `redis://[user:password@]host:port` into a cluster node. */
function clusterNode(address: string): ClusterNode {
  const { host, port } = parseRedisNode(address)
  return { host, port }
}

/**
 * The seeds' user, password and TLS, for every node of the cluster (the
 * config checked that the seeds agree): ioredis Cluster takes them from
 * `redisOptions`, never from the seed addresses.
 */
function clusterNodeOptions(nodes: readonly string[]): RedisOptions {
  const { username, password, isTls } = parseRedisNode(nodes[0]!).auth
  return { username, password, ...(isTls && { tls: {} }) }
}

/**
 * Writes that count only once replicas have them (redisReplicaAcks > 0): the
 * appends to one server go in one pipeline that ends with WAIT.
 */
export interface ReplicatedWriter {
  /**
   * A client of its own: WAIT holds its connection until the replicas answer,
   * which must not delay reads and cursor writes. It never sends a command
   * again after its connection dropped (the script may have run, and a second
   * run would store the messages twice): the write fails, and the producer
   * decides whether to retry. Send to a server only while `isConnected`.
   */
  readonly client: Commands
  /** Names the server that serves `key` now (one name on a single Redis), to group appends by server. */
  serverOf(key: string): string
  /**
   * Whether a pipeline for `server` would be written to its socket now. If
   * not, ioredis would hold it in an offline queue, and the setting that
   * keeps it from sending a command twice also fails that queue, commands
   * never sent included, at each failed reconnect: so wait instead. True
   * once the writer has quit (the write then fails at once).
   */
  isConnected(server: string): boolean
  /** Reads the slot map again, as a MOVED reply asks: the writer's pipelines do not (nothing on one Redis). */
  refreshSlots(): void
}

export interface RedisClients {
  /** Commands and scripts; auto-pipelined on a cluster. */
  readonly commands: Commands
  /** Publish and subscribe, plain on one Redis, sharded on a Cluster. */
  readonly pubsub: PubSub
  /**
   * The connection in subscriber mode behind `pubsub` (on a Cluster: sharded
   * subscribers, one per master that serves a subscribed channel). Only for
   * tests that cut it; everything else goes through `pubsub`.
   */
  readonly subscriber: Redis | Cluster
  /**
   * Whether a command that ioredis sends again after a lost reply still runs
   * before every command issued after it: on one Redis, yes (one connection,
   * in order); on a Cluster, no (it may be retried on the master that took
   * over, after later commands ran there).
   */
  readonly resendsInOrder: boolean
  /**
   * Whether a command that failed with `err` may succeed if sent again: the
   * connection or the cluster's routing failed, not the command, and the
   * clients have not been closed.
   */
  isPassing(err: unknown): boolean
  /** A Redis Cluster, where a script's keys must share one slot; one Redis takes keys of any slots. */
  readonly isCluster: boolean
  /** The writer for appends that wait for replicas; made (and connected) on the first call. */
  replicatedWriter(): ReplicatedWriter
  /**
   * Whether the command connection takes commands now (on a Cluster: the
   * cluster client is ready) and Redis answers them (the watchdog's last
   * PING was answered: see setAnswering). Work that can wait for Redis is
   * skipped or refused while it does not, rather than queued without bound.
   */
  isReady(): boolean
  /**
   * Whether a command on `key` would be answered now: isReady(), or on a
   * Cluster whose client is ready, the master that serves the key's slot
   * answered the watchdog's last PING (one stalled master does not stop the
   * others' keys). The keys of one script share a slot: one of them will do.
   */
  isReadyFor(...keys: readonly string[]): boolean
  /**
   * What the watchdog found (redis/watchdog.ts): a Redis that hangs with its
   * connections open (stopped, swapping, a long script) keeps them ready,
   * yet answers nothing; while it does not answer, isReady() is false. On a
   * Cluster, `mastersDown` (`host:port`) are the masters that did not answer.
   */
  setAnswering(isAnswering: boolean, mastersDown?: readonly string[]): void
  /**
   * Calls `listener` whenever a command of the cluster client (or the writer's)
   * is answered `CLUSTERDOWN`, before ioredis retries it or fails it (each
   * retry calls it again): the watchdog asks at once (RedisWatchdog.checkNow).
   * Never on one Redis.
   */
  onClusterDown(listener: () => void): void
  /** A command that fails at its first CLUSTERDOWN, past ioredis (ScriptCallOptions.failsAtClusterDown), met one. */
  reportClusterDown(): void
  /** The masters of a Cluster that did not answer the watchdog's last PING; empty on one Redis. */
  readonly mastersDown: readonly string[]
  /**
   * A connection of its own to each of `servers` (the command connection to
   * one Redis, or to each master of a Cluster), for the watchdog's PING
   * (redis/ping.ts): a PING on `commands` waits behind every command sent
   * before it, so a backlog of appends that takes Redis longer than the
   * PING's timeout would read as a Redis that hangs; Redis answers another
   * connection's PING between them. Made on the first call (undefined until
   * ready: ask `servers` themselves meanwhile); those to servers no longer
   * named are closed.
   */
  pingConnectionsOf(servers: readonly Redis[]): (Redis | undefined)[]
  /** Commands held in the clients' offline queues (sent once Redis is back). */
  offlineCommands(): number
  /** Resolves once both connections are up; rejects if Redis cannot be reached within timeoutMs. */
  connect(timeoutMs: number): Promise<void>
  /** Closes the connections once the commands sent are answered (waits for Redis if it is down). */
  quit(): Promise<void>
  /** Drops the connections now: commands still waiting for Redis fail at once, also while reconnecting. */
  disconnect(): void
}

/**
 * The writer's options on top of the others: a command whose connection drops
 * fails at once instead of being sent again after the reconnect (ioredis'
 * `maxRetriesPerRequest: 0`) or on the node that took over (the cluster's
 * `retryDelayOnFailover: 0`). Redirections (MOVED, ASK, TRYAGAIN,
 * CLUSTERDOWN) are still followed for a command sent alone: Redis answers
 * those without running the command. A pipeline that ends with WAIT hands
 * them back (ioredis follows a pipeline's only if its other commands read):
 * RoomLog sends such an append again. `maxRetriesPerRequest: 0` also fails the offline queue at each
 * failed reconnect, hence ReplicatedWriter.isConnected.
 */
const writerOptions: RedisOptions = { ...baseOptions, maxRetriesPerRequest: 0 }

/**
 * Replies that say the command did not run, and may if sent again: the
 * cluster's routing while a master fails over or slots move, a server that
 * loads its data, a master that came back as a replica, one busy with a long
 * script, a script cache emptied.
 */
const PASSING_REPLY = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|LOADING|READONLY|BUSY|NOSCRIPT)\b/

/**
 * A failure that a later try may not meet: a reply above, or no reply at all
 * (the connection closed, ioredis gave up redirecting). Other replies are the
 * command's own (a script error, OOM); a TypeError or RangeError is a bug.
 */
function isPassingFailure(err: unknown): boolean {
  if (err instanceof ReplyError) return PASSING_REPLY.test((err as Error).message)
  return err instanceof Error && !(err instanceof TypeError) && !(err instanceof RangeError)
}

/**
 * The length of a client's offline queue: ioredis keeps it private and has no
 * bound for it, so the broker bounds what it queues (periodic work waits for
 * Redis, publishes for the backlog) and this measures it.
 */
function offlineQueueLength(client: Redis | Cluster): number {
  return (client as unknown as { offlineQueue?: { length: number } }).offlineQueue?.length ?? 0
}

/** An error's own words; a cluster's "Failed to refresh slots cache" carries the node's that made it fail. */
function reasonOf(err: Error): string {
  const { lastNodeError } = err as { lastNodeError?: unknown }
  return lastNodeError instanceof Error ? lastNodeError.message : err.message
}

/** The part of ioredis' Cluster that every redirect reply of a command or a pipeline goes through. */
interface RedirectHandling {
  handleError(err: Error, ...rest: unknown[]): void
}

/**
 * Calls `onClusterDown` at each CLUSTERDOWN reply to the cluster's commands
 * and pipelines, then lets ioredis handle it as before. ioredis has no event
 * for it, and its retries hide it for up to maxRedirections × 100 ms; its
 * handleError (not part of its typed API) sees every such reply.
 */
function reportClusterDown(cluster: Cluster, onClusterDown: () => void): void {
  const handling = cluster as unknown as RedirectHandling
  const handleError = handling.handleError.bind(cluster)
  handling.handleError = (err, ...rest) => {
    if (err instanceof Error && err.message.startsWith('CLUSTERDOWN')) onClusterDown()
    handleError(err, ...rest)
  }
}

export function createRedisClients(target: RedisTarget, log: Logger): RedisClients {
  const sharded = target.kind === 'cluster'
  const timers: NodeJS.Timeout[] = []
  const clusterDownListeners: (() => void)[] = []
  const clusterDown = (): void => {
    for (const listener of clusterDownListeners) listener()
  }
  // What a failed connect reports: a cluster that no node let in says only "None of startup nodes is
  // available", while its nodes' own errors say why (WRONGPASS, NOAUTH, a refused connection).
  let lastError: string | undefined
  const make = (role: 'commands' | 'subscriber' | 'writer'): Redis | Cluster => {
    const options = role === 'writer' ? writerOptions : baseOptions
    let client: Redis | Cluster
    if (target.kind === 'standalone') {
      // No auto-pipelining on one Redis: it builds a Pipeline per tick, which with the few
      // commands of a tick costs more than it saves (bench unicast: 2x the deliveries/s).
      // Commands on one connection keep their order either way.
      client = new Redis(target.url, options)
    } else {
      const cluster = new Cluster(target.nodes.map(clusterNode), {
        redisOptions: { ...options, ...clusterNodeOptions(target.nodes) },
        lazyConnect: true,
        enableOfflineQueue: true,
        // On a cluster it also groups a tick's commands per master.
        enableAutoPipelining: role === 'commands',
        // Their first argument is their number of keys, by which auto-pipelining would route them;
        // without it they are routed by their keys (and they carry a turn's work for a slot already).
        autoPipeliningIgnoredCommands: variadicScripts(),
        clusterRetryStrategy: retryStrategy,
        // CLUSTER SLOTS answers in a millisecond, but a busy event loop can make ioredis' 1 s
        // default expire first: the client then counts every node as failed and reconnects.
        slotsRefreshTimeout: 5000,
        shardedSubscribers: role === 'subscriber',
        ...(role === 'writer' && { retryDelayOnFailover: 0 }),
      })
      // Not ioredis' slotsRefreshInterval: a refresh still running when the client quits
      // re-arms its timer, for ever. This one stops with quit() and never holds the process.
      const timer = setInterval(() => cluster.refreshSlotsCache(), SLOTS_REFRESH_MS)
      timer.unref()
      timers.push(timer)
      // The writer does not retry on the node that took over, so nothing would make it look:
      // each failed reconnect to a lost node reads the slot map (a promoted replica shows up).
      if (role === 'writer') cluster.on('node error', () => cluster.refreshSlotsCache())
      if (role !== 'subscriber') reportClusterDown(cluster, clusterDown)
      cluster.on('node error', (err: Error) => (lastError = reasonOf(err)))
      // Auto-pipelined commands hand a slot move's redirects back: send those again alone.
      client = role === 'commands' ? followRedirects(cluster) : cluster
    }
    // Every client has an error listener: ioredis retries, the log says why.
    client.on('error', (err: Error) => {
      lastError = reasonOf(err)
      log.warn({ err: err.message, role }, 'redis connection error')
    })
    // ...and the line that ends them: each connection says when it is back (the first connect is not news).
    let hasBeenReady = false
    client.on('ready', () => {
      if (hasBeenReady) log.info({ role }, 'redis connection restored')
      hasBeenReady = true
    })
    return client
  }
  const commands = defineScripts(make('commands'))
  const subscriber = make('subscriber')
  let writer: ReplicatedWriter | undefined
  const pingConnections = new Map<Redis, Redis>()
  let isClosed = false // by quit() or disconnect(): no ping connection is made after
  let isAnswering = true
  let mastersDown: readonly string[] = []
  // A connection made again answered its handshake: Redis answers (the watchdog's next PING says so
  // later, and if it stalls again, says that too).
  commands.on('ready', () => {
    isAnswering = true
    mastersDown = []
  })
  const isReady = (): boolean => isAnswering && commands.status === 'ready'
  /** Whether the master serving `key` answered the last PING; false while the slot map does not name one. */
  const isMasterAnswering = (key: string): boolean => {
    const master = (commands as Cluster).slots[slotOf(key)]?.[0]
    return master !== undefined && !mastersDown.includes(master)
  }

  return {
    commands,
    pubsub: createPubSub(commands, subscriber, sharded),
    subscriber,
    resendsInOrder: !sharded,
    isPassing: err => commands.status !== 'end' && isPassingFailure(err),
    isCluster: sharded,
    replicatedWriter() {
      if (writer) return writer
      const client = defineScripts(make('writer'))
      client.connect().catch((err: unknown) => log.warn({ err, role: 'writer' }, 'redis connect failed')) // ioredis retries
      // A cluster's connection to each node, by the name its slot map uses; made again when they change.
      let nodes: Map<string, Redis> | undefined
      if (client instanceof Cluster) {
        const forget = (): void => void (nodes = undefined)
        client.on('+node', forget).on('-node', forget)
      }
      writer = {
        client,
        serverOf(key) {
          if (!(client instanceof Cluster)) return 'main'
          // Before the slot map is known, one group per slot is always right.
          const slot = slotOf(key)
          return client.slots[slot]?.[0] ?? `slot ${slot}`
        },
        isConnected(server) {
          if (client.status === 'end') return true
          if (!(client instanceof Cluster)) return client.status === 'ready'
          if (client.status !== 'ready') return false
          nodes ??= new Map(
            client.nodes('all').map(node => [`${node.options.host}:${node.options.port}`, node]),
          )
          const node = nodes.get(server)
          // A cluster connects to a node on its first command (a promoted replica, say): ask it now.
          if (node?.status === 'wait')
            node.connect().catch((err: unknown) => log.warn({ err, role: 'writer' }, 'redis connect failed'))
          return node?.status === 'ready'
        },
        refreshSlots() {
          if (client instanceof Cluster) client.refreshSlotsCache()
        },
      }
      return writer
    },
    isReady,
    isReadyFor(...keys) {
      if (isReady()) return true
      // Known per master only on a cluster whose client is ready and some of whose masters answer.
      if (!sharded || commands.status !== 'ready' || mastersDown.length === 0) return false
      return keys.every(isMasterAnswering)
    },
    setAnswering(answering, down = []) {
      isAnswering = answering
      mastersDown = answering ? [] : down
    },
    onClusterDown(listener) {
      clusterDownListeners.push(listener)
    },
    reportClusterDown: clusterDown,
    get mastersDown() {
      return mastersDown
    },
    pingConnectionsOf(servers) {
      if (isClosed) return servers.map(() => undefined)
      for (const [server, own] of pingConnections)
        if (!servers.includes(server)) {
          own.disconnect()
          pingConnections.delete(server)
        }
      return servers.map(server => {
        let own = pingConnections.get(server)
        // A cluster's node connection does not reconnect (the cluster makes a new one): nor does its copy.
        if (!own || own.status === 'end') {
          own = server.duplicate()
          // The command connection logs the same errors, and the watchdog the outage.
          own.on('error', () => {})
          own.connect().catch(() => {}) // ioredis retries (on one Redis)
          pingConnections.set(server, own)
        }
        return own.status === 'ready' ? own : undefined
      })
    },
    offlineCommands() {
      let queued = 0
      for (const client of [commands, subscriber, writer?.client]) {
        if (!client) continue
        queued += offlineQueueLength(client)
        if (client instanceof Cluster)
          for (const node of client.nodes('all')) queued += offlineQueueLength(node)
      }
      return queued
    },
    async connect(timeoutMs) {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis not reachable within ${timeoutMs} ms`)), timeoutMs)
      })
      try {
        await Promise.race([Promise.all([commands.connect(), subscriber.connect()]), timeout])
      } catch (err) {
        const reason = (err as Error).message
        throw lastError === undefined || lastError === reason
          ? err
          : new Error(`${reason} (last error: ${lastError})`, { cause: err })
      } finally {
        clearTimeout(timer)
      }
    },
    async quit() {
      for (const timer of timers) clearInterval(timer)
      isClosed = true
      for (const own of pingConnections.values()) own.disconnect() // nothing of its own to wait for
      // One that disconnect() ended is left ended (a Cluster's quit() would set it disconnecting).
      await Promise.allSettled(
        [commands, subscriber, writer?.client].map(client => client?.status !== 'end' && client?.quit()),
      )
    },
    disconnect() {
      for (const timer of timers) clearInterval(timer)
      isClosed = true
      for (const own of pingConnections.values()) dropNow(own)
      for (const client of [commands, subscriber, writer?.client]) if (client) dropNow(client)
    },
  }
}

/**
 * Whether a periodic write to a key would be answered now: always, unless
 * some masters of a cluster did not answer the watchdog's last PING
 * (RedisClients.mastersDown); then only if its slot is on another one.
 * One Redis is written to as it is: the timers wait while it does not answer
 * (canWritePeriodically).
 */
export function writableNow(
  redis: Pick<RedisClients, 'mastersDown' | 'isReadyFor'>,
): (key: string) => boolean {
  if (redis.mastersDown.length === 0) return () => true
  return key => redis.isReadyFor(key)
}

/** Some master answers: a periodic run then writes only to the slots of those that do (writableNow). */
export function canWritePeriodically(redis: Pick<RedisClients, 'isReady' | 'mastersDown'>): boolean {
  return redis.isReady() || redis.mastersDown.length > 0
}
