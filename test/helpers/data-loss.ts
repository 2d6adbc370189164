/**
 * What the data-loss tests (test/e2e/*data-loss*) check once Redis lost data
 * under traffic to a shared room `news` and to each consumer's own room,
 * messages `news <n>` and `own<u> <n>`: every message from the loss on
 * arrives once and in order in both rooms, each consumer's record holds
 * `news` again, and each user counts online.
 */
import type { ExecutionContext } from 'ava'
import type { Cluster, Redis } from 'ioredis'
import type Producer from 'snapper-producer'
import type { Keys } from '../../src/redis/keys.js'
import { call } from './broker.js'
import { eventually, holdsFor, pause } from './eventually.js'

/** snapper-producer publishing `news <n>` to `news` and `own<u> <n>` to each user's own room every 10 ms, n from 0. */
export function publishEvery10ms(producer: Producer, userIds: readonly string[]) {
  let next = 0
  let publishing = true
  const done = (async () => {
    while (publishing) {
      producer.sendMessage('news', `news ${next}`)
      userIds.forEach((user, u) => producer.sendMessage(`user${user}`, `own${u} ${next}`))
      // Counted as sent before the pause: read during it, `next` is not one already sent, whose append
      // a master killed meanwhile may have stored and lost the reply of (then stored twice: README).
      next++
      await pause(10)
    }
  })()
  return {
    /** The number the next message will carry. */
    get next(): number {
      return next
    },
    /** Stops, once the message under way is sent. */
    stop(): Promise<void> {
      publishing = false
      return done
    },
  }
}

/** The numbers from `from` on of the messages tagged `tag` (`<tag> <n>`), in the order received. */
export const numbered = (messages: readonly string[], tag: string, from: number): number[] =>
  messages
    .filter(message => message.startsWith(`${tag} `))
    .map(message => Number(message.slice(tag.length + 1)))
    .filter(i => i >= from)

/** Resolves once every consumer got a `news` message numbered `from` or later (within 10 s). */
export async function deliveriesResumed(received: () => string[][], from: number): Promise<void> {
  await eventually(() => received().every(messages => numbered(messages, 'news', from).length > 0), {
    what: 'deliveries to resume',
    timeoutMs: 10_000,
  })
}

export interface AfterLoss {
  /** What each consumer received so far; consumer u's own room is tagged `own<u>`. */
  readonly received: () => string[][]
  /** The first message number published after the loss, and the next one not published (the publisher stopped). */
  readonly from: number
  readonly to: number
  /** What happened, for the failure messages: "the loss", "the master died". */
  readonly since: string
  readonly admin: Redis | Cluster
  readonly keys: Keys
  readonly consumerIds: readonly string[]
  readonly userIds: readonly string[]
  readonly producer: Producer
}

export async function assertEveryMessageAfterLoss(t: ExecutionContext, after: AfterLoss): Promise<void> {
  const { received, from, to, since } = after
  const published = Array.from({ length: to - from }, (_, i) => from + i)
  const counts = (messages: readonly string[], u: number): [number, number] => [
    numbered(messages, 'news', from).length,
    numbered(messages, `own${u}`, from).length,
  ]
  const complete = (messages: readonly string[], u: number): boolean =>
    counts(messages, u).every(count => count >= published.length)
  await eventually(() => received().every(complete), {
    what: () =>
      `every message published after ${since} (${published.length} per room) to arrive; got ${received()
        .map((messages, u) => counts(messages, u).join('+'))
        .join(', ')}`,
    timeoutMs: 10_000,
  })
  await holdsFor(() => received().every(complete), 300, 'no more deliveries')
  received().forEach((messages, u) => {
    t.deepEqual(numbered(messages, 'news', from), published, `consumer ${u}, the shared room: once, in order`)
    t.deepEqual(numbered(messages, `own${u}`, from), published, `consumer ${u}, its own room: once, in order`)
  })
  // What a reconnect reads: each consumer's record in Redis, the shared room in it again.
  for (const id of after.consumerIds)
    t.truthy(await after.admin.hget(after.keys.consumer(id).rooms, 'news'), 'still in the shared room')
  for (const user of after.userIds)
    t.like(await call(after.producer.request('consumers', [user]) as never), { length: 1 }, 'counted online')
}
