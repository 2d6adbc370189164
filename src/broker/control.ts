import { Packr } from 'msgpackr'

/** cmsgpack in Redis packs ms timestamps as 64-bit integers: read them as plain numbers. */
const packr = new Packr({ int64AsType: 'number' })

/**
 * Messages on a node's control channel: other nodes (or the producer side)
 * tell the node holding a consumer that it joined or left a room, or that
 * another node takes its session over (`kick`), which the old node answers
 * with `released` once the consumer's cursors are in Redis.
 */
export type ControlMessage =
  | { readonly type: 'join'; readonly consumerId: string; readonly room: string; readonly cursor: string }
  | { readonly type: 'leave'; readonly consumerId: string; readonly room: string }
  | { readonly type: 'kick'; readonly consumerId: string; readonly byNode: string }
  | { readonly type: 'released'; readonly consumerId: string }

export function encodeControl(message: ControlMessage): Buffer {
  switch (message.type) {
    case 'join':
      return packr.pack(['join', message.consumerId, message.room, message.cursor])
    case 'leave':
      return packr.pack(['leave', message.consumerId, message.room])
    case 'kick':
      return packr.pack(['kick', message.consumerId, message.byNode])
    case 'released':
      return packr.pack(['released', message.consumerId])
  }
}

/** undefined for anything that is not a control message (it is then ignored and counted). */
export function decodeControl(bytes: Buffer): ControlMessage | undefined {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch {
    return undefined // not msgpack: not ours
  }
  if (!Array.isArray(value) || !value.every(item => typeof item === 'string')) return undefined
  const [type, consumerId, a, b] = value as string[]
  if (consumerId === undefined) return undefined
  if (type === 'released') return { type, consumerId }
  if (a === undefined) return undefined
  if (type === 'join' && b !== undefined) return { type, consumerId, room: a, cursor: b }
  if (type === 'leave') return { type, consumerId, room: a }
  if (type === 'kick') return { type, consumerId, byNode: a }
  return undefined
}

/**
 * Whether a message on a room channel is a leave notice (Membership.leave)
 * rather than an announcement, without decoding it: both are msgpack arrays,
 * whose first item is a string (the type) in a control message and a number
 * (ms) in an announcement.
 */
export function isNotice(bytes: Buffer): boolean {
  const first = bytes[1]
  return first !== undefined && ((first & 0xe0) === 0xa0 || first === 0xd9)
}

/** The announcement of an append on a room channel: ms, first seq, the messages (room_append-4n.lua). */
export interface Announcement {
  readonly ms: number
  readonly first: number
  readonly messages: readonly string[]
  /** The nonce of a tracked append (one message); undefined for a plain one. */
  readonly track: string | undefined
}

export function decodeAnnouncement(bytes: Buffer): Announcement | undefined {
  let value: unknown
  try {
    value = packr.unpack(bytes)
  } catch {
    return undefined // not msgpack: not an announcement
  }
  if (!Array.isArray(value) || value.length < 3 || value.length > 4) return undefined
  const [ms, first, messages, track] = value as unknown[]
  if (typeof ms !== 'number' || typeof first !== 'number' || !Array.isArray(messages)) return undefined
  if (track !== undefined && (typeof track !== 'string' || messages.length !== 1)) return undefined
  // cmsgpack packs an empty Lua table as a map; an announcement always has messages.
  if (!messages.every(message => typeof message === 'string')) return undefined
  return { ms, first, messages, track }
}
