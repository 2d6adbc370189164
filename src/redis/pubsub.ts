import type { Cluster, Redis } from 'ioredis'
import type { Commands } from './scripts.js'

/**
 * Redis pub/sub as the broker uses it, whatever the topology. On one Redis:
 * plain channels (SUBSCRIBE, PUBLISH). On a Redis Cluster: sharded channels
 * (SSUBSCRIBE, SPUBLISH), so that a message travels only within the shard
 * that serves its channel's slot, not to every server of the cluster. The
 * broker talks to this interface and never names either.
 */
export interface PubSub {
  /** The command a Lua script announces with (room_append-4n.lua ARGV[4]). */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH'
  /** Publishes on the command connection. */
  publish(channel: string, message: Buffer): Promise<unknown>
  subscribe(channel: string): Promise<unknown>
  unsubscribe(channel: string): Promise<unknown>
  /** Every message of every subscribed channel, as ioredis received it (the Buffer is the listener's to keep). */
  onMessage(listener: (channel: string, message: Buffer) => void): void
  /**
   * The subscriber is back after a lost connection (on a Cluster: one of its
   * shard connections, after a failover too) and ioredis has subscribed its
   * channels again; what was published meanwhile never arrives.
   */
  onResubscribed(listener: () => void): void
  /** The subscriber connection closed: messages may be lost from now until onResubscribed. */
  onClose(listener: () => void): void
}

/** What both kinds share: the subscriber connection's events. */
abstract class SubscriberEvents {
  constructor(
    protected readonly commands: Commands,
    protected readonly subscriber: Redis | Cluster,
  ) {}

  onResubscribed(listener: () => void): void {
    // `ready` also comes with the first connection, which is not a resubscription.
    let wasReady = this.subscriber.status === 'ready'
    this.subscriber.on('ready', () => {
      if (wasReady) listener()
      wasReady = true
    })
  }

  onClose(listener: () => void): void {
    this.subscriber.on('close', listener)
  }
}

type Subscription = 'subscribe' | 'unsubscribe'

/**
 * Channels in one (UN)SUBSCRIBE at most. A turn can ask for more (a storm of
 * consumers with many rooms each, whose takes are answered in one read):
 * they go as several commands. Spread as one call's arguments, 130,000
 * channels overflowed the stack.
 */
export const MAX_CHANNELS_PER_COMMAND = 4096

/** Channels to (un)subscribe in one command, and the outcome its callers wait for. */
interface Run {
  readonly kind: Subscription
  readonly channels: string[]
  readonly done: Promise<unknown>
  send(): void
}

/**
 * The subscriptions asked for in one turn of the event loop, sent as few
 * commands as their order allows: a connection storm subscribes a room per
 * consumer, one SUBSCRIBE per turn instead of one each. Asks of the same
 * kind in a row share a command; a subscribe after an unsubscribe of the
 * same turn stays after it.
 */
class SubscriptionLine {
  readonly #subscriber: Redis | Cluster
  #runs: Run[] = []

  constructor(subscriber: Redis | Cluster) {
    this.#subscriber = subscriber
  }

  add(kind: Subscription, channel: string): Promise<unknown> {
    let run = this.#runs.at(-1)
    if (run?.kind !== kind || run.channels.length === MAX_CHANNELS_PER_COMMAND) {
      if (this.#runs.length === 0) setImmediate(() => this.#flush())
      const channels: string[] = []
      let send!: () => void
      const done = new Promise<unknown>((resolve, reject) => {
        send = () => this.#subscriber[kind](...channels).then(resolve, reject)
      })
      run = { kind, channels, done, send }
      this.#runs.push(run)
    }
    run.channels.push(channel)
    return run.done
  }

  #flush(): void {
    const runs = this.#runs
    this.#runs = []
    for (const run of runs) run.send() // in order on the one subscriber connection
  }
}

/** SUBSCRIBE / PUBLISH: one Redis. */
class PlainPubSub extends SubscriberEvents implements PubSub {
  readonly publishCommand = 'PUBLISH'
  readonly #line = new SubscriptionLine(this.subscriber)

  publish(channel: string, message: Buffer): Promise<unknown> {
    return this.commands.publish(channel, message)
  }

  subscribe(channel: string): Promise<unknown> {
    return this.#line.add('subscribe', channel)
  }

  unsubscribe(channel: string): Promise<unknown> {
    return this.#line.add('unsubscribe', channel)
  }

  onMessage(listener: (channel: string, message: Buffer) => void): void {
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) =>
      listener(channel.toString(), message),
    )
  }
}

/**
 * SSUBSCRIBE / SPUBLISH: a Redis Cluster whose client runs sharded
 * subscribers, one connection per master that serves a subscribed channel.
 */
class ShardedPubSub extends SubscriberEvents implements PubSub {
  readonly publishCommand = 'SPUBLISH'

  publish(channel: string, message: Buffer): Promise<unknown> {
    return this.commands.spublish(channel, message)
  }

  subscribe(channel: string): Promise<unknown> {
    return this.subscriber.ssubscribe(channel)
  }

  unsubscribe(channel: string): Promise<unknown> {
    return this.subscriber.sunsubscribe(channel)
  }

  onMessage(listener: (channel: string, message: Buffer) => void): void {
    this.subscriber.on('smessageBuffer', (channel: Buffer, message: Buffer) =>
      listener(channel.toString(), message),
    )
  }

  override onResubscribed(listener: () => void): void {
    super.onResubscribed(listener)
    // The cluster client stays ready while one shard connection drops or its master fails
    // over: ioredis makes that connection again, for the master that serves its slots now,
    // resubscribes, and says so with `subscribersReady` (also after attempts that failed,
    // while a failover is still going on).
    this.subscriber.on('subscribersReady', listener)
  }
}

/** Sharded on a Cluster (whose subscriber must be made with `shardedSubscribers`), plain on one Redis. */
export function createPubSub(commands: Commands, subscriber: Redis | Cluster, sharded: boolean): PubSub {
  return sharded ? new ShardedPubSub(commands, subscriber) : new PlainPubSub(commands, subscriber)
}
