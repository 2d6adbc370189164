import { call } from '../../helpers/broker.js'
import { between, now, sleep, upTo } from './clock.js'
import type { ChaosConsumer } from './consumers.js'
import type { Nodes } from './nodes.js'

/** How long a publish or a join waits for its answer before the next one goes (a late answer still counts). */
const ANSWER_WAIT_MS = 2000

export interface Publish {
  readonly room: string
  readonly text: string
  readonly start: number
  end: number // Infinity until answered with success
  status: 'pending' | 'ok' | 'error'
  readonly slot: number
}

export interface MembershipOp {
  readonly kind: 'join' | 'leave'
  readonly start: number
  end: number // Infinity until answered; an error leaves it so (its effect is unknown)
  result?: unknown
}

/**
 * The producers' side: publishes to every room (each room's one at a time,
 * through any node up) and joins and leaves, with when each was sent and
 * answered, which is what the check holds the consumers to.
 */
export class Load {
  readonly publishes = new Map<string, Publish>()
  /** By `${consumer name} ${room}`. */
  readonly ops = new Map<string, MembershipOp[]>()
  readonly counts = { published: 0, answered: 0, publishErrors: 0, joins: 0, leaves: 0, opErrors: 0 }
  readonly #nodes: Nodes
  #messageNumber = 0
  #isRunning = true

  constructor(nodes: Nodes) {
    this.#nodes = nodes
  }

  /** Publishes to `room` until stop(), each message once the last one was answered (or ANSWER_WAIT_MS passed). */
  async publishLoop(room: string, tag: string, draw: () => number): Promise<void> {
    while (this.#isRunning) {
      const slot = this.#nodes.liveProducer(draw)
      if (!slot) {
        await sleep(50)
        continue
      }
      const text = `${tag}|${++this.#messageNumber}`
      const publish: Publish = {
        room,
        text,
        start: now(),
        end: Infinity,
        status: 'pending',
        slot: slot.index,
      }
      this.publishes.set(text, publish)
      this.counts.published++
      const answer = call(slot.producer!.request('publish', [[room, text]]) as never).then(
        result => {
          if (result === 1) {
            publish.end = now()
            publish.status = 'ok'
            this.counts.answered++
          } else publish.status = 'error'
        },
        () => {
          publish.status = 'error'
          this.counts.publishErrors++
        },
      )
      await upTo(answer, ANSWER_WAIT_MS)
      await sleep(between(20, 120, draw))
    }
  }

  /** The publish loops end after their publish under way. */
  stop(): void {
    this.#isRunning = false
  }

  /** Joins or leaves the consumer through a node up; resolves on the answer or after ANSWER_WAIT_MS. */
  async membershipOp(
    consumer: ChaosConsumer,
    room: string,
    kind: 'join' | 'leave',
    draw: () => number,
  ): Promise<void> {
    let slot = this.#nodes.liveProducer(draw)
    while (!slot) {
      await sleep(50)
      slot = this.#nodes.liveProducer(draw)
    }
    const key = `${consumer.name} ${room}`
    const op: MembershipOp = { kind, start: now(), end: Infinity }
    this.ops.set(key, [...(this.ops.get(key) ?? []), op])
    this.counts[kind === 'join' ? 'joins' : 'leaves']++
    consumer.log(`${kind} ${room} sent through node ${slot.index}`)
    const answer = call(
      (kind === 'join'
        ? slot.producer!.joinRoom(room, consumer.id)
        : slot.producer!.leaveRoom(room, consumer.id)) as never,
    ).then(
      result => {
        op.end = now()
        op.result = result
        consumer.log(`${kind} ${room} answered ${String(result)}`)
      },
      err => {
        this.counts.opErrors++
        consumer.log(`${kind} ${room} failed: ${String(err)}`)
      },
    )
    await upTo(answer, ANSWER_WAIT_MS)
  }
}
