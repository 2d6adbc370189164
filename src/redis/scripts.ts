import { readdirSync, readFileSync } from 'node:fs'
import type { Cluster, Redis } from 'ioredis'
import { ScriptRequests } from './script-request.js'

/** The folder of the Lua scripts, at the package root next to src/ and dist/. */
export const LUA_DIR = new URL('../../../lua/', import.meta.url)

type Reply<T> = Promise<T>
type Arg = string | number

/**
 * The typed signatures of lua/*.lua as ioredis commands (KEYS first, then
 * ARGV). The header of each file is its contract.
 */
export interface ScriptCommands {
  /**
   * room_append-4n.lua: `numberOfKeys` (4 per part), then per part its log,
   * head, channel and track keys; then maxLen, maxBytes, ttlSec, the publish
   * command, writer, call number, and per part the call it must follow (0:
   * none), its nonce, message count and messages. Resolves with -1 (refused:
   * a call to follow is not stored yet), or 1 and per part `ms, first seq,
   * stored`: 1, 0 (stored before), or -2 with the error text for first (its
   * room's keys are broken).
   */
  roomAppend(numberOfKeys: number, ...keysAndArgs: Arg[]): Reply<(number | string)[]>
  /**
   * progress_write-1n.lua: `numberOfKeys` (1 per room), the rooms' progress
   * hashes; then ttlSec, and per room its pair count and its consumer id,
   * cursor pairs.
   */
  progressWrite(numberOfKeys: number, ...keysAndArgs: Arg[]): Reply<number>
  /**
   * room_read-2n.lua: `numberOfKeys` (2 per room), then per room its log and
   * head keys; then ttlSec, the call's max bytes, and per room its cursor,
   * count and max bytes. Resolves with one array per room read: since (a
   * number), more (1 if the room's bytes cut the read short, else 0), then
   * 4 strings per message; or -1 and an error's text.
   */
  roomRead(numberOfKeys: number, ...keysAndArgs: Arg[]): Reply<(number | string)[][]>
  trackAck(track: string, consumerId: string, receipt: string, maxReceipts: number): Reply<-1 | 0 | 1>
  escalationSchedule(
    due: string,
    info: string,
    id: string,
    delayMs: number,
    message: string,
    keepMs: number,
  ): Reply<number>
  escalationClaim(
    due: string,
    info: string,
    leaseMs: number,
    max: number,
    windowMs: number,
  ): Reply<(string | number)[]>
  escalationRetry(due: string, info: string, id: string, leaseEnd: number, delayMs: number): Reply<0 | 1>
  escalationDone(due: string, info: string, id: string, leaseEnd: number): Reply<0 | 1>
  consumerJoin(
    rooms: string,
    node: string,
    left: string,
    room: string,
    cursor: string,
    ttlSec: number,
    maxRooms: number,
  ): Reply<[number, string | null]>
  consumerLeave(
    rooms: string,
    node: string,
    left: string,
    room: string,
    ownRoom: string,
    ttlSec: number,
  ): Reply<[number, string | null]>
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
  /**
   * consumer_touch-3n.lua: `numberOfKeys` (3 per consumer), per consumer its
   * rooms, node and presence keys; then nodeId, ttlSec and, per consumer,
   * its id and its user's own room. Resolves with how many node keys name
   * another node, then the positions (from 1) of the consumers whose record
   * Redis lost.
   */
  consumerTouch(numberOfKeys: number, ...keysAndArgs: Arg[]): Reply<number[]>
  /**
   * consumer_restore-4.lua: writes a consumer's record again (node key,
   * rooms at these cursors but those left since, presence) if Redis lost it,
   * keeping rooms joined since; 1 if it did. The pairs go as one array
   * (ioredis flattens it): spread, as many as maxRoomsPerConsumer allows
   * would overflow the stack (every call frame holds each argument).
   */
  consumerRestore(
    rooms: string,
    node: string,
    presence: string,
    left: string,
    nodeId: string,
    ttlSec: number,
    consumerId: string,
    ownRoom: string,
    roomCursorPairs: readonly string[],
  ): Reply<0 | 1>
  /** cursor_commit-5.lua; the pairs as one array, as consumerRestore's. */
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
    roomCursorPairs: readonly string[],
  ): Reply<[moved: number, released: 0 | 1]>
}

/** A command client (one Redis or a Cluster) that knows our scripts. */
export type Commands = (Redis | Cluster) & ScriptCommands

/**
 * `consumer_join-3.lua` → `consumerJoin`, 3 keys; `room_append-4n.lua` →
 * `roomAppend`, keys in groups of 4, as many as the caller passes (their
 * number goes first: numberOfKeys undefined).
 */
function commandName(file: string): { name: string; numberOfKeys: number | undefined } | undefined {
  const match = /^([a-z_]+)-(\d+)(n?)\.lua$/.exec(file)
  if (!match) return undefined
  const name = match[1]!.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase())
  return { name, numberOfKeys: match[3] === 'n' ? undefined : Number(match[2]) }
}

/**
 * The scripts whose first argument is their number of keys (`-<k>n.lua`):
 * ioredis' auto-pipelining routes a command by its first argument, so on a
 * Cluster these must not be auto-pipelined (they are routed by their keys).
 */
export function variadicScripts(): string[] {
  return readdirSync(LUA_DIR)
    .map(commandName)
    .filter(command => command !== undefined && command.numberOfKeys === undefined)
    .map(command => command!.name)
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
    client.defineCommand(command.name, {
      lua,
      ...(command.numberOfKeys !== undefined && { numberOfKeys: command.numberOfKeys }),
    })
  }
  return client as Commands
}

const requests = new Map<string, ScriptRequests>()

/**
 * A script of lua/ whose calls are written straight into one request
 * each: for the calls on a hot path (ScriptRequests). One per file and process.
 */
export function scriptRequests(file: string): ScriptRequests {
  let script = requests.get(file)
  if (!script) requests.set(file, (script = new ScriptRequests(readFileSync(new URL(file, LUA_DIR), 'utf8'))))
  return script
}

export type { Arg }
