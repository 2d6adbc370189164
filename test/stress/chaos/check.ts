import { at, now, sleep } from './clock.js'
import type { ChaosConsumer, Receipt } from './consumers.js'
import type { Load, MembershipOp, Publish } from './load.js'
import type { Nodes } from './nodes.js'
import type { Violations } from './report.js'
import type { Timeline } from './timeline.js'

/**
 * A duplicate whose first copy came from a node SIGKILLed (or SIGSTOPped, then taken over) this soon
 * after is README's "After a node crash": a cursor flush (1 s) and a margin.
 */
const CRASH_WINDOW_MS = 1000 + 1000

/**
 * Whether `consumer` must get `p` (true), must not (false), or either (undefined): only a
 * publish answered with success, while the membership the answered calls say is the same
 * from before it began until the end of the run (a leave after it drops what was not
 * delivered yet; a call whose answer never came leaves it unknown from then on).
 */
export function isOwed(consumer: ChaosConsumer, p: Publish, load: Load): boolean | undefined {
  if (p.status !== 'ok' || !consumer.id) return undefined
  if (p.room === `user${consumer.userId}`) return p.start > consumer.firstOpenAt ? true : undefined
  if (p.room.startsWith('user')) return false
  const list = load.ops.get(`${consumer.name} ${p.room}`) ?? []
  // Any call overlapping the publish, or answered late, or failed: unknown.
  if (list.some(op => op.start <= p.end && op.end >= p.start)) return undefined
  const before = list.filter(op => op.end < p.start)
  const last = before.reduce<MembershipOp | undefined>((a, op) => (!a || op.end > a.end ? op : a), undefined)
  if (before.some(op => op !== last && op.end > last!.start)) return undefined // two calls crossed
  const isIn = last?.kind === 'join'
  if (isIn && list.some(op => op.kind === 'leave' && op.start > p.end)) return undefined
  return isIn
}

/** Waits until every consumer has every answered publish it is owed (at most 30 s), then 2 s for copies. */
export async function awaitOwed(consumers: readonly ChaosConsumer[], load: Load): Promise<void> {
  const owed = (consumer: ChaosConsumer): Publish[] =>
    [...load.publishes.values()].filter(p => isOwed(consumer, p, load) === true)
  const waitUntil = now() + 30_000
  while (now() < waitUntil) {
    const short = consumers.some(consumer => {
      const got = new Set(consumer.received.map(r => r.text))
      return owed(consumer).some(p => !got.has(p.text))
    })
    if (!short) break
    await sleep(200)
  }
  await sleep(2000) // anything sent twice comes now
}

export interface CheckResult {
  /** Deliveries owed and checked. */
  readonly checked: number
  /** Duplicates README "After a node crash" allows. */
  readonly documented: string[]
}

/**
 * Holds each consumer to the promise: every publish owed received (else
 * LOST), none not owed (UNEXPECTED), each once (DUPLICATE, unless after a
 * crash), in order per room (REORDERED), and no gap notice.
 */
export function checkDeliveries(
  consumers: readonly ChaosConsumer[],
  load: Load,
  nodes: Nodes,
  timeline: Timeline,
  violations: Violations,
): CheckResult {
  let checked = 0
  const documented: string[] = []
  for (const consumer of consumers) {
    const got = new Map<string, Receipt[]>()
    for (const receipt of consumer.received)
      got.set(receipt.text, [...(got.get(receipt.text) ?? []), receipt])
    for (const p of load.publishes.values()) {
      const owes = isOwed(consumer, p, load)
      const receipts = got.get(p.text) ?? []
      if (owes === true) {
        checked++
        if (receipts.length === 0)
          violations.add(
            `${consumer.name} ${p.text}: LOST (published ${at(p.start)}-${at(p.end)} through node ${p.slot})`,
            [p.start, p.end],
            consumer,
          )
      } else if (owes === false && receipts.length > 0)
        violations.add(
          `${consumer.name} ${p.text}: UNEXPECTED (not a member for the whole publish ${at(p.start)}-${at(p.end)}), received ${at(receipts[0]!.at)}`,
          [p.start, receipts[0]!.at],
          consumer,
        )
    }
    for (const [text, receipts] of got) {
      if (receipts.length < 2) continue
      const first = receipts[0]!
      // The copy comes from another node (or life) that took the consumer over. A message on its way when
      // the node froze counts; a Redis pause holds the flush back.
      const crash = nodes.slots[first.slot]?.interrupted.find(
        i =>
          i.generation === first.generation &&
          i.at >= first.at - 500 &&
          i.at - first.at <= CRASH_WINDOW_MS + timeline.pausedMs(first.at, i.at) &&
          receipts[1]!.at > i.at &&
          (receipts[1]!.slot !== first.slot || receipts[1]!.generation !== first.generation),
      )
      const what = `${consumer.name} ${text}: received ${receipts.length} times (${receipts.map(r => `${at(r.at)} from node ${r.slot}.${r.generation}`).join(', ')})`
      if (crash) documented.push(`${what}, node ${first.slot} got ${crash.kind} at ${at(crash.at)}`)
      else violations.add(`${what}: DUPLICATE`, [first.at, receipts[receipts.length - 1]!.at], consumer)
    }
    checkOrder(consumer, load, violations)
    for (const gap of consumer.gaps) violations.add(`${consumer.name}: GAP notice ${gap}`, [], consumer)
  }
  return { checked, documented }
}

/** Order: in each room, a message answered before another was sent comes first. */
function checkOrder(consumer: ChaosConsumer, load: Load, violations: Violations): void {
  const byRoom = new Map<string, Publish[]>()
  const seen = new Set<string>()
  for (const receipt of consumer.received) {
    const p = load.publishes.get(receipt.text)
    if (!p || seen.has(p.text)) continue
    seen.add(p.text)
    byRoom.set(p.room, [...(byRoom.get(p.room) ?? []), p])
  }
  for (const list of byRoom.values()) {
    let latest: Publish | undefined // the received one that started last
    for (const p of list) {
      if (latest && p.status === 'ok' && latest.start > p.end)
        violations.add(
          `${consumer.name} ${p.text}: REORDERED, received after ${latest.text} (sent ${at(latest.start)}, after this one's answer ${at(p.end)})`,
          [p.start, latest.start],
          consumer,
        )
      if (!latest || p.start > latest.start) latest = p
    }
  }
}
