import { randomBytes } from 'node:crypto'
import { Packr } from 'msgpackr'
import { platformOf } from '../auth/token.js'
import type { Keys } from '../redis/keys.js'
import type { PubSub } from '../redis/pubsub.js'
import type { Commands } from '../redis/scripts.js'
import type { Platform } from './latency.js'

const packr = new Packr()

/** One consumer in a room, live on some node. */
export interface RoomMember {
  readonly consumerId: string
  readonly userId: string
  readonly platform: Platform
  /** The name of the node holding its session. */
  readonly node: string
}

/** Who is in a room on this cluster: every live node's answer, added up. */
export interface RoomMembers {
  /** Members online, on the nodes that answered. */
  readonly count: number
  /** Some of them (at most MEMBERS_LISTED per node). */
  readonly consumers: readonly RoomMember[]
  /** Nodes that answered in time. */
  readonly nodes: number
}

/** Members one node lists at most (it counts them all). */
export const MEMBERS_LISTED = 50
/** An answer outlives its question this long, in seconds: a slow node's answer expires unread. */
const ANSWER_TTL_SEC = 30
/** How often the asker looks for answers, in ms. */
const ANSWER_POLL_MS = 25

/**
 * "Who is in this room?" No index in Redis keeps room → members (members are
 * kept per consumer, and only nodes know who is live), so an operator's
 * question goes to every node on one channel, and each answers from its own
 * fan-out into one hash:
 *
 *   asker ──PUBLISH {q}:ch [room, id]──▶ every node
 *   node  ──HSET {q}:a:<id> <node id> answer, EXPIRE──▶ asker polls until all live nodes answered
 *
 * Rare, operator-driven, and costs the nodes nothing until asked.
 */
export async function askRoomMembers(
  redis: Commands,
  pubsub: PubSub,
  keys: Keys,
  room: string,
  options: { readonly liveNodes: number; readonly timeoutMs: number },
): Promise<RoomMembers> {
  const queryId = randomBytes(9).toString('base64url')
  const answersKey = keys.queries.answers(queryId)
  await pubsub.publish(keys.queries.channel, packr.pack(['members', room, queryId]))
  const deadline = Date.now() + options.timeoutMs
  let answers: Record<string, string> = {}
  for (;;) {
    answers = await redis.hgetall(answersKey)
    if (Object.keys(answers).length >= options.liveNodes || Date.now() >= deadline) break
    await new Promise(resolve => setTimeout(resolve, ANSWER_POLL_MS))
  }
  await redis.del(answersKey)
  let count = 0
  const consumers: RoomMember[] = []
  for (const text of Object.values(answers)) {
    const answer = parseAnswer(text)
    if (!answer) continue
    count += answer.count
    for (const [consumerId, userId] of answer.listed)
      consumers.push({ consumerId, userId, platform: platformOf(consumerId), node: answer.node })
  }
  return { count, consumers, nodes: Object.keys(answers).length }
}

/** A question from the queries channel: the room asked about and where to answer; undefined if not one. */
export function decodeQuestion(bytes: Buffer): { room: string; queryId: string } | undefined {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch {
    return undefined // not msgpack: not ours
  }
  if (!Array.isArray(value) || value[0] !== 'members') return undefined
  const [, room, queryId] = value as unknown[]
  return typeof room === 'string' && typeof queryId === 'string' ? { room, queryId } : undefined
}

/** A node's answer: how many members it holds, and some of them (keyed by its id, naming it by its name). */
export function answerRoomMembers(
  redis: Commands,
  keys: Keys,
  node: { readonly id: string; readonly name: string },
  queryId: string,
  members: Iterable<{ readonly consumerId: string; readonly userId: string }>,
): Promise<unknown> {
  let count = 0
  const listed: [string, string][] = []
  for (const { consumerId, userId } of members) {
    count++
    if (listed.length < MEMBERS_LISTED) listed.push([consumerId, userId])
  }
  const key = keys.queries.answers(queryId)
  const answer = JSON.stringify({ node: node.name, count, listed })
  return redis.multi().hset(key, node.id, answer).expire(key, ANSWER_TTL_SEC).exec()
}

function parseAnswer(text: string): { node: string; count: number; listed: [string, string][] } | undefined {
  try {
    const { node, count, listed } = JSON.parse(text) as { node?: unknown; count?: unknown; listed?: unknown }
    if (typeof node !== 'string' || typeof count !== 'number' || !Array.isArray(listed)) return undefined
    return { node, count, listed: listed.filter((pair): pair is [string, string] => Array.isArray(pair)) }
  } catch {
    return undefined // not an answer of ours
  }
}
