/**
 * Micro-benchmark: what the broker's process spends per appended message to
 * send a room_append-4n.lua call and read its reply, on the unicast path
 * (calls of 235 rooms with one message each, 8 calls in flight): the call
 * written as one request (ScriptRequests, what RoomLog sends) versus
 * ioredis' script command (`defineCommand`, what it sent before). Redis runs
 * in its own process; only this process's CPU is counted. Alternates the two,
 * 10 rounds of 200 calls each, and prints the medians.
 *
 *   node dist/bench/micro/append-client.js
 */
import { defineScripts, scriptRequests } from '../../src/redis/scripts.js'
import { startRedis } from '../../test/helpers/redis.js'

const ROOMS = 5000
const PARTS = 235
const CALLS = 200
const IN_FLIGHT = 8
const MESSAGE = JSON.stringify({ e: 'change', d: 'x'.repeat(110) })

const server = await startRedis([])
const redis = defineScripts(server.client())
const append = scriptRequests('room_append-4n.lua')
let seed = 42
const nextRoom = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % ROOMS
const calls = Array.from({ length: CALLS }, () => Array.from({ length: PARTS }, () => `{user${nextRoom()}}`))
let callNumber = 0

const keysOf = (room: string): string[] => [
  `SNP:${room}:log`,
  `SNP:${room}:head`,
  `SNP:${room}:ch`,
  `SNP:${room}:track:`,
]

function viaIoredis(rooms: readonly string[]): Promise<unknown> {
  const keys: string[] = []
  const args: (string | number)[] = []
  for (const room of rooms) {
    keys.push(...keysOf(room))
    args.push(0, '', 1, MESSAGE)
  }
  return redis.roomAppend(
    keys.length,
    ...keys,
    1000,
    16 << 20,
    86400,
    'PUBLISH',
    'micro',
    ++callNumber,
    ...args,
  )
}

function viaScriptRequests(rooms: readonly string[]): Promise<unknown> {
  const request = append.start(4 * rooms.length, 6 + 4 * rooms.length)
  for (const room of rooms) for (const key of keysOf(room)) request.key(key)
  request
    .arg(1000)
    .arg(16 << 20)
    .arg(86400)
    .arg('PUBLISH')
    .arg('micro')
    .arg(++callNumber)
  for (let i = 0; i < rooms.length; i++) request.arg(0).arg('').arg(1).arg(MESSAGE)
  return append.send(redis, request.end())
}

/** This process's CPU per message, in µs, for one round of CALLS calls. */
async function round(call: (rooms: readonly string[]) => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage()
  for (let i = 0; i < CALLS; i += IN_FLIGHT) await Promise.all(calls.slice(i, i + IN_FLIGHT).map(call))
  const { user, system } = process.cpuUsage(before)
  return (user + system) / (CALLS * PARTS)
}

const median = (values: number[]): number => values.sort((a, b) => a - b)[values.length >> 1]!
try {
  for (let i = 0; i < 3; i++) {
    await round(viaIoredis) // warm up
    await round(viaScriptRequests)
  }
  const ioredis: number[] = []
  const requests: number[] = []
  for (let i = 0; i < 10; i++) {
    ioredis.push(await round(viaIoredis))
    requests.push(await round(viaScriptRequests))
  }
  console.log(`ioredis script command (defineCommand)  ${median(ioredis).toFixed(2)} µs/message`)
  console.log(`ScriptRequests (one request per call)   ${median(requests).toFixed(2)} µs/message`)
} finally {
  redis.disconnect()
  await server.stop()
}
