/**
 * The servers a scenario runs against, each as N child processes (`--workers
 * N`): Snapper nodes (the real startNode), the Socket.IO + redis-adapter
 * peer, the bare uWS ceiling, and the floor of any broker that stores and
 * routes through Redis (uWS + Redis, floor-node.ts; `scripts`: the same with
 * the Redis work of Snapper's guarantees). One interface for all: where
 * consumers connect, how they join rooms, where producers publish, and the
 * processes whose CPU and memory the bench reads.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { consumerIdOf, Tokens } from '../../src/auth/token.js'
import type { Config } from '../../src/config/defaults.js'
import { rssBytes } from '../lib/proc.js'
import type { ConsumerSpec } from '../load/consumer.js'
import { LeanProducer } from '../load/producer.js'
import type { FromChild, ServerOptions, ToChild } from './child.js'

export type TargetName = 'snapper' | 'socketio' | 'uws' | 'floor' | 'scripts'

export const TARGET_LABELS: Readonly<Record<TargetName, string>> = {
  snapper: 'Snapper',
  socketio: 'Socket.IO 4 + redis-adapter',
  uws: 'bare uWS (ceiling)',
  floor: 'uWS + Redis (floor)',
  scripts: "uWS + Snapper's Redis work (floor)",
}

export interface TargetOptions {
  readonly workers: number
  readonly redisUrl: string
  readonly secret: string
  /** Key prefix of this run (every run gets a new one; Redis is also flushed). */
  readonly prefix: string
  /** Node/V8 flags for Snapper's processes (e.g. --max-semi-space-size=64), to try them. */
  readonly nodeFlags?: readonly string[]
  /** Node/V8 flags for every target's processes (`--perf`: their JavaScript named for perf). */
  readonly allNodeFlags?: readonly string[]
  /** Config overrides for Snapper nodes. */
  readonly snapperConfig?: Partial<Config>
}

/** A bench consumer: who it is, and where its messages come from. */
export interface BenchUser {
  readonly userId: string
  /** Rooms besides its own `user<userId>`. */
  readonly rooms: readonly string[]
  readonly eio?: 3 | 4
  /** The token's source claim (snapper consumer id prefix). */
  readonly source?: string
  /** Snapper: the SDK's delivery format (`codec=`). */
  readonly codec?: 'json' | 'msgpack'
  /** Offer permessage-deflate. */
  readonly deflate?: boolean
}

const ENTRIES: Readonly<Record<TargetName, string>> = {
  snapper: './snapper-node.js',
  socketio: './socketio-node.js',
  uws: './uws-node.js',
  floor: './floor-node.js',
  scripts: './floor-node.js', // BENCH_TARGET=scripts
}

export class RunningTarget {
  readonly name: TargetName
  readonly #children: ChildProcess[]
  readonly gatewayPorts: readonly number[]
  readonly producerPorts: readonly number[]
  readonly #tokens: Tokens
  readonly #secret: string

  private constructor(name: TargetName, children: ChildProcess[], ready: FromChild[], secret: string) {
    this.name = name
    this.#children = children
    this.gatewayPorts = ready.map(r => (r.type === 'ready' ? r.gatewayPort : 0))
    this.producerPorts = ready.map(r => (r.type === 'ready' ? r.producerPort : 0))
    this.#secret = secret
    this.#tokens = new Tokens([secret])
  }

  static async start(name: TargetName, options: TargetOptions): Promise<RunningTarget> {
    const children: ChildProcess[] = []
    const ready = await Promise.all(
      Array.from({ length: options.workers }, (_, index) => {
        const server: ServerOptions = {
          redisUrl: options.redisUrl,
          secret: options.secret,
          index,
          prefix: options.prefix,
        }
        const execArgv = [
          '--expose-gc',
          ...(options.allNodeFlags ?? []),
          ...(name === 'snapper' ? (options.nodeFlags ?? []) : []),
        ]
        const child = fork(new URL(ENTRIES[name], import.meta.url), [], {
          execArgv,
          env: {
            ...process.env,
            BENCH_SERVER: JSON.stringify(server),
            BENCH_TARGET: name,
            BENCH_SNAPPER_CONFIG: JSON.stringify(options.snapperConfig ?? {}),
          },
          stdio: ['ignore', process.env.BENCH_SERVER_LOGS ? 'inherit' : 'ignore', 'inherit', 'ipc'],
        })
        children.push(child)
        return new Promise<FromChild>((resolve, reject) => {
          child.once('message', (message: FromChild) => resolve(message))
          child.once('exit', code =>
            reject(new Error(`${name} server ${index} exited with ${code} before it was ready`)),
          )
        })
      }),
    ).catch(async (err: unknown) => {
      for (const child of children) child.kill('SIGKILL')
      throw err
    })
    return new RunningTarget(name, children, ready, options.secret)
  }

  get pids(): number[] {
    return this.#children.map(child => child.pid!)
  }

  /** Snapper joins rooms through producers (`subscribe`); the peers take them from the handshake. */
  get joinsThroughProducer(): boolean {
    return this.name === 'snapper'
  }

  /** The uWS ceiling shares nothing between processes: every publish goes to every process. */
  get publishesToAll(): boolean {
    return this.name === 'uws'
  }

  /** The consumer id Snapper gives this user's connection (the Engine.IO sid), and its token. */
  credentials(user: BenchUser, expSec = 4_102_444_800): { token: string; consumerId: string } {
    const claims = { userId: user.userId, exp: expSec, ...(user.source && { source: user.source }) }
    const token = this.#tokens.sign(claims, expSec - Math.floor(Date.now() / 1000))
    return { token, consumerId: consumerIdOf(claims) }
  }

  /** Where consumer `index` connects: the gateways take turns (as nginx would spread them). */
  consumerSpec(index: number, user: BenchUser): ConsumerSpec {
    const port = this.gatewayPorts[index % this.gatewayPorts.length]!
    const eio = this.name === 'snapper' ? (user.eio ?? 4) : 4
    let query = `EIO=${eio}&transport=websocket`
    if (this.name === 'floor' || this.name === 'scripts')
      query += `&token=${this.credentials(user).token}&rooms=${encodeURIComponent(user.rooms.join(','))}`
    else if (this.name !== 'snapper')
      query += `&uid=${user.userId}&rooms=${encodeURIComponent(user.rooms.join(','))}`
    else {
      query += `&token=${this.credentials(user).token}`
      if (user.codec) query += `&codec=${user.codec}`
    }
    return {
      host: '127.0.0.1',
      port,
      path: `/websocket/?${query}`,
      protocol: this.name === 'socketio' ? 'socketio' : 'snapper',
      eio,
      ...(user.codec && { codec: user.codec }),
      ...(user.deflate && { deflate: true }),
    }
  }

  /** Producer connection `index` (each node gets its share). */
  async producer(index: number): Promise<LeanProducer> {
    return LeanProducer.connect(
      '127.0.0.1',
      this.producerPorts[index % this.producerPorts.length]!,
      this.#secret,
    )
  }

  /** Sends `request` to every server process and waits for each one's `answer`. */
  #ask(request: (index: number) => ToChild, answer: FromChild['type']): Promise<FromChild[]> {
    return Promise.all(
      this.#children.map(
        (child, index) =>
          new Promise<FromChild>((resolve, reject) => {
            const onMessage = (message: FromChild): void => {
              if (message.type !== answer) return
              child.off('message', onMessage)
              resolve(message)
            }
            child.on('message', onMessage)
            // A server that died fails the run (without the callback, the closed channel's error would end the bench).
            child.send(request(index), err => {
              if (!err) return
              child.off('message', onMessage)
              reject(new Error(`${this.name} server ${index} is gone: ${err.message}`))
            })
          }),
      ),
    )
  }

  /** Memory of every server process after a full GC in each: resident, and the JS heap's share. */
  async memoryAfterGc(): Promise<{ rss: number; heapUsed: number; external: number }> {
    const replies = await this.#ask(() => ({ type: 'gc' }), 'gc-done')
    let heapUsed = 0
    let external = 0
    for (const reply of replies) {
      if (reply.type !== 'gc-done') continue
      heapUsed += reply.heapUsed
      external += reply.external
    }
    return { rss: this.pids.reduce((sum, pid) => sum + rssBytes(pid), 0), heapUsed, external }
  }

  /** Starts watching every server process's own loop (LoopWatch in child.ts). */
  async startLoopWatch(): Promise<void> {
    await this.#ask(() => ({ type: 'loop-watch-start' }), 'loop-watch-started')
  }

  /** Since startLoopWatch: the highest loop delay p99 of the server processes, and their GC pauses summed. */
  async stopLoopWatch(): Promise<{ loopDelayP99Us: number; gcMs: number }> {
    let loopDelayP99Us = 0
    let gcMs = 0
    for (const reply of await this.#ask(() => ({ type: 'loop-watch-stop' }), 'loop-watch-stopped')) {
      if (reply.type !== 'loop-watch-stopped') continue
      loopDelayP99Us = Math.max(loopDelayP99Us, reply.loopDelayP99Us)
      gcMs += reply.gcMs
    }
    return { loopDelayP99Us, gcMs }
  }

  /** Starts a V8 CPU profile in every server process (node:inspector). */
  async startProfile(): Promise<void> {
    await this.#ask(() => ({ type: 'profile-start' }), 'profile-started')
  }

  /** Stops the profiles and writes `<base>-<process index>.cpuprofile`. */
  async stopProfile(base: string): Promise<void> {
    await this.#ask(
      index => ({ type: 'profile-stop', file: `${base}-${index}.cpuprofile` }),
      'profile-written',
    )
  }

  /** Graceful stop (a profile is written on exit); SIGKILL after 15 s. */
  async stop(): Promise<void> {
    await Promise.all(
      this.#children.map(
        child =>
          new Promise<void>(resolve => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
            child.once('exit', () => {
              clearTimeout(timer)
              resolve()
            })
            child.send({ type: 'stop' } satisfies ToChild)
          }),
      ),
    )
  }
}
