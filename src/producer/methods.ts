/**
 * The methods a producer may call, from checked params to ProducerApi
 * (docs/producer-protocol.md §5). `publish` has issued its Redis commands (or
 * queued them in order) before it returns, which is what keeps a connection's
 * publish order when frames are served without waiting; so has `track`. `subscribe` and
 * `unsubscribe` have not: they take several round trips (read the room's
 * head, then write the membership, then tell the consumer's node), so a
 * connection serves them alone (SERVED_ALONE).
 */
import {
  checkRoomCount,
  escalateAfterMsOf,
  isBoundedString,
  isTrackId,
  isValidPublication,
  type InputLimits,
  type ProducerApi,
  type Publication,
} from '../broker/api.js'
import { SnapperError } from '../errors.js'

/** A method's result is JSON; a refusal is a rejected SnapperError (a sync throw is a bug). */
export type Method = (params: unknown) => Promise<unknown>

export type MethodName = 'publish' | 'subscribe' | 'unsubscribe' | 'consumers' | 'track' | 'receipt' | 'echo'

/**
 * Methods a connection serves alone: one starts once every earlier frame's
 * work is done, and later frames wait until it is done. So a subscribe then
 * an unsubscribe of the same consumer leave it out; a publish right after a
 * subscribe is delivered to the consumer, and one right after an unsubscribe
 * is not (the consumer's node has been told by then). They are rare next to
 * publishes, so the wait costs little.
 */
export const SERVED_ALONE: ReadonlySet<string> = new Set<MethodName>(['subscribe', 'unsubscribe'])

/**
 * Rooms and ids must be non-empty strings, as in the original; rooms and
 * consumer or user ids share the maxRoomBytes bound (real ids are under 30 bytes).
 */
export function createMethods(api: ProducerApi, limits: InputLimits): ReadonlyMap<string, Method> {
  const isName = (value: unknown): value is string => isBoundedString(value, limits.maxRoomBytes)
  const pairOf = (params: unknown): [string, string] => {
    if (Array.isArray(params) && isName(params[0]) && isName(params[1])) return [params[0], params[1]]
    throw new SnapperError('INVALID_PARAMS')
  }

  const methods: Record<MethodName, Method> = {
    publish(params) {
      const publications = toPublications(params, limits)
      return publications.length === 0 ? Promise.resolve(0) : api.publish(publications)
    },
    async subscribe(params) {
      const [room, consumerId] = pairOf(params)
      return api.subscribe(room, consumerId)
    },
    async unsubscribe(params) {
      const [room, consumerId] = pairOf(params)
      return api.unsubscribe(room, consumerId)
    },
    async consumers(params) {
      if (!Array.isArray(params) || !isName(params[0])) throw new SnapperError('INVALID_PARAMS')
      // Rebuilt so the key order is the original's whatever the API returns.
      const { length, android, ios, web } = await api.consumers(params[0])
      return { length, android, ios, web }
    },
    // Async, yet its Redis commands are issued before it returns (an async body runs up to its first await).
    async track(params) {
      if (!Array.isArray(params) || params.length > 3 || !isValidPublication(params[0], params[1], limits))
        throw new SnapperError('INVALID_PARAMS')
      const [room, message, options] = params as [string, string, unknown]
      return { id: await api.track(room, message, escalateAfterMsOf(options)) }
    },
    async receipt(params) {
      if (!Array.isArray(params) || !isTrackId(params[0], limits)) throw new SnapperError('INVALID_PARAMS')
      const { acked, moreAcks, escalated } = await api.receipt(params[0])
      return { acked, moreAcks, escalated }
    },
    echo: params => Promise.resolve(params ?? null),
  }
  return new Map(Object.entries(methods))
}

/**
 * The messages a frame's work writes to Redis, as counted for flow control
 * (in-flight.ts): a `publish` batch's pairs, valid or not (each valid one is
 * its own entry in a room log), and 1 for any other call.
 */
export function messagesOf(method: string, params: unknown): number {
  if (method === 'publish' && Array.isArray(params) && Array.isArray(params[0])) return params.length
  return 1
}

/**
 * The accepted pairs of `publish` params, in order: the batch form
 * `[[room, message], ...]`, or the single form `[room, message]` (told apart
 * by params[0] not being an array). Pairs that are not two bounded non-empty
 * strings are skipped silently, as the original did; the rest goes through,
 * unless it names more than maxRoomsPerPublish rooms (then none of it does).
 */
export function toPublications(params: unknown, limits: InputLimits): Publication[] {
  if (!Array.isArray(params) || params.length === 0) return []
  if (!Array.isArray(params[0]))
    return isValidPublication(params[0], params[1], limits) ? [[params[0], params[1]]] : []
  const publications: Publication[] = []
  for (const pair of params as unknown[]) {
    if (Array.isArray(pair) && isValidPublication(pair[0], pair[1], limits))
      publications.push([pair[0], pair[1]])
  }
  checkRoomCount(publications, limits)
  return publications
}
