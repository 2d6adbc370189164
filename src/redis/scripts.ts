import { readdirSync, readFileSync } from 'node:fs'
import type { ChainableCommander, Cluster, Redis } from 'ioredis'

/** The folder of the Lua scripts, at the package root next to src/ and dist/. */
export const LUA_DIR = new URL('../../../lua/', import.meta.url)

type Reply<T> = Promise<T>
type Arg = string | number

/**
 * The typed signatures of lua/*.lua as ioredis commands (KEYS first, then
 * ARGV). The header of each file is its contract.
 */
export interface ScriptCommands {
  roomAppend(
    log: string,
    head: string,
    channel: string,
    track: string,
    maxLen: number,
    maxBytes: number,
    ttlSec: number,
    publish: 'PUBLISH' | 'SPUBLISH',
    writer: string,
    call: number,
    after: number,
    trackNonce: string,
    ...messages: string[]
  ): Reply<[ms: number, first: number, stored: -1 | 0 | 1]>
  roomRead(log: string, cursor: string, count: number, ttlSec: number, maxBytes: number): Reply<string[]>
  trackAck(track: string, consumerId: string, receipt: string): Reply<0 | 1>
  escalationSchedule(due: string, info: string, id: string, delayMs: number, message: string): Reply<number>
  escalationClaim(due: string, info: string, leaseMs: number, max: number): Reply<(string | number)[]>
  escalationRetry(due: string, info: string, id: string, leaseEnd: number, delayMs: number): Reply<0 | 1>
  escalationDone(due: string, info: string, id: string, leaseEnd: number): Reply<0 | 1>
  consumerJoin(
    rooms: string,
    node: string,
    room: string,
    cursor: string,
    ttlSec: number,
  ): Reply<[number, string | null]>
  consumerLeave(rooms: string, node: string, room: string): Reply<[number, string | null]>
  consumerConnect(
    rooms: string,
    node: string,
    inflight: string,
    presence: string,
    ownRoomHead: string,
    nodeId: string,
    ttlSec: number,
    consumerId: string,
    ownRoom: string,
    evenIfHeld: '1' | '',
  ): Reply<
    | [taken: 0, holder: string]
    | [taken: 1, previous: string | null, inflight: string | null, head: string, ...rooms: string[]]
  >
  consumerTouch(rooms: string, node: string, nodeId: string, ttlSec: number): Reply<0 | 1>
  cursorCommit(
    rooms: string,
    node: string,
    inflight: string,
    presence: string,
    ownRoomProgress: string,
    ttlSec: number,
    releaseNodeId: string,
    inflightRecord: string,
    consumerId: string,
    ...roomCursorPairs: string[]
  ): Reply<number>
}

/** A command client (one Redis or a Cluster) that knows our scripts. */
export type Commands = (Redis | Cluster) & ScriptCommands

/** The same scripts queued on a pipeline. */
export type PipelineScripts = {
  [K in keyof ScriptCommands]: (...args: Parameters<ScriptCommands[K]>) => ScriptPipeline
}
export type ScriptPipeline = ChainableCommander & PipelineScripts

/** `room_append-4.lua` → `roomAppend`, 4 keys. */
function commandName(file: string): { name: string; numberOfKeys: number } | undefined {
  const match = /^([a-z_]+)-(\d+)\.lua$/.exec(file)
  if (!match) return undefined
  const name = match[1]!.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase())
  return { name, numberOfKeys: Number(match[2]) }
}

/**
 * Reads lua/ once and registers every script with ioredis `defineCommand`:
 * it sends EVALSHA and falls back to EVAL on NOSCRIPT (after a restart or a
 * failover), and on a Cluster routes by the first key's slot.
 */
export function defineScripts(client: Redis | Cluster): Commands {
  for (const file of readdirSync(LUA_DIR).sort()) {
    const command = commandName(file)
    if (!command) continue
    const lua = readFileSync(new URL(file, LUA_DIR), 'utf8')
    client.defineCommand(command.name, { numberOfKeys: command.numberOfKeys, lua })
  }
  return client as Commands
}

export type { Arg }
