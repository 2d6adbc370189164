/**
 * A real deployment for the fault matrix, from the test helpers: a Redis with
 * append-only persistence (`appendfsync always`: what was answered is on
 * disk) or a Redis Cluster with replicas, and N hosts, each `snapper start
 * --workers W` (the real CLI, node:cluster) on its own ports. On one Redis,
 * each host reaches it through its own TCP proxy, so that one host can be cut
 * off while the others go on. Its RSS is sampled: broker processes (primaries
 * and workers) and Redis.
 */
import { readFileSync } from 'node:fs'
import { rssBytes } from '../lib/proc.js'
import { startCli, type RunningCli, type Teardowns } from '../../test/helpers/cli.js'
import { startRedisCluster, type RedisCluster } from '../../test/helpers/redis-cluster.js'
import { startRedisProxy, type RedisProxy } from '../../test/helpers/redis-proxy.js'
import { startRedis, type RedisServer } from '../../test/helpers/redis.js'

export const SECRET = 'fault-matrix-secret-of-at-least-32-bytes'
export const PREFIX = 'FLT'

export interface DeploymentOptions {
  readonly hosts: number
  readonly workersPerHost: number
  readonly redis: 'standalone' | 'cluster'
}

/** One `snapper start` process group: a primary and its workers. */
export interface Host {
  readonly index: number
  cli: RunningCli
  /** Its Redis proxy (one Redis only). */
  readonly proxy: RedisProxy | undefined
}

/** Everything a run registers to undo at its end, in reverse order (ava's `t.teardown` for the CLI helper). */
export class Cleanup implements Teardowns {
  readonly #steps: (() => unknown)[] = []

  teardown(fn: () => unknown): void {
    this.#steps.push(fn)
  }

  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) await step()
  }
}

export class Deployment {
  readonly redis: RedisServer | undefined
  readonly cluster: RedisCluster | undefined
  readonly hosts: Host[]
  readonly #options: DeploymentOptions
  readonly #cleanup: Cleanup
  readonly #redisPids: number[]

  private constructor(
    options: DeploymentOptions,
    cleanup: Cleanup,
    redis: RedisServer | undefined,
    cluster: RedisCluster | undefined,
    redisPids: number[],
  ) {
    this.#options = options
    this.#cleanup = cleanup
    this.redis = redis
    this.cluster = cluster
    this.#redisPids = redisPids
    this.hosts = []
  }

  static async start(options: DeploymentOptions, cleanup: Cleanup): Promise<Deployment> {
    let redis: RedisServer | undefined
    let cluster: RedisCluster | undefined
    let redisPids: number[]
    if (options.redis === 'standalone') {
      redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always', '--maxclients', '20000'])
      cleanup.teardown(() => redis!.stop())
      redisPids = []
    } else {
      cluster = await startRedisCluster()
      cleanup.teardown(() => cluster!.stop())
      redisPids = await Promise.all(
        cluster.nodes.map(async ({ port }) => {
          const info = await cluster!.nodeClient(port).info('server')
          return Number(/process_id:(\d+)/.exec(info)?.[1])
        }),
      )
    }
    const deployment = new Deployment(options, cleanup, redis, cluster, redisPids)
    for (let index = 0; index < options.hosts; index++) {
      const proxy = redis ? await startRedisProxy(redis.port) : undefined
      if (proxy) cleanup.teardown(() => proxy.close())
      const cli = await deployment.#startCli(proxy)
      deployment.hosts.push({ index, cli, proxy })
    }
    return deployment
  }

  /** `snapper start` for a host; on the ports it had when `ports` are given (a restart). */
  #startCli(proxy: RedisProxy | undefined, ports?: RunningCli['ports']): Promise<RunningCli> {
    const redisTarget = proxy ? proxy.url : this.cluster!.nodes.map(node => node.address).join(',')
    return startCli(this.#cleanup, {
      workers: this.#options.workersPerHost,
      env: {
        SNAPPER_REDIS: redisTarget,
        SNAPPER_REDIS_PREFIX: PREFIX,
        SNAPPER_TOKEN_SECRETS: SECRET,
        SNAPPER_LOG_LEVEL: 'error',
        ...(ports && {
          SNAPPER_GATEWAY_PORT: String(ports.gateway),
          SNAPPER_PRODUCER_PORT: String(ports.producer),
          SNAPPER_ADMIN_PORT: String(ports.admin),
        }),
      },
    })
  }

  /** Starts a host again on its own ports, once its processes are gone (killed or drained). */
  async restartHost(host: Host): Promise<void> {
    await host.cli.exited
    host.cli = await this.#startCli(host.proxy, host.cli.ports)
  }

  /** Every consumer-facing port: worker i of a host listens on its gateway port + i. */
  get gatewayPorts(): number[] {
    return this.hosts.flatMap(host =>
      Array.from({ length: this.#options.workersPerHost }, (_, i) => host.cli.ports.gateway + i),
    )
  }

  get producerPorts(): number[] {
    return this.hosts.map(host => host.cli.ports.producer)
  }

  /** Pids of a host's workers now (children of its primary). */
  workerPids(host: Host): number[] {
    const pid = host.cli.child.pid!
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number)
    } catch {
      return [] // the primary is gone: so are its workers
    }
  }

  /** Resident memory now: broker processes (every primary and worker), and Redis (every node). */
  memory(): { broker: number; redis: number } {
    let broker = 0
    for (const host of this.hosts)
      for (const pid of [host.cli.child.pid!, ...this.workerPids(host)]) broker += rssBytes(pid)
    const redisPids = this.redis ? [this.redis.pid] : this.#redisPids
    return { broker, redis: redisPids.reduce((sum, pid) => sum + rssBytes(pid), 0) }
  }
}

/** The highest memory seen, sampled every 250 ms until stop(). */
export class MemoryPeak {
  broker = 0
  redis = 0
  readonly #timer: NodeJS.Timeout

  constructor(deployment: Deployment) {
    const sample = (): void => {
      const now = deployment.memory()
      this.broker = Math.max(this.broker, now.broker)
      this.redis = Math.max(this.redis, now.redis)
    }
    sample()
    this.#timer = setInterval(sample, 250)
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}
