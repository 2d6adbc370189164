/**
 * Micro-benchmark: what Redis spends per message in room_append-4n.lua on the
 * unicast path (calls of 235 rooms with one message each, 5,000 rooms: what a
 * node sends per turn in `npm run bench -- unicast`).
 *
 *   node dist/bench/micro/append-script.js [--script FILE] [--calls N] [--callgrind]
 *
 * Prints Redis CPU per message (INFO cpu; moves with the machine), and with
 * `--callgrind` (valgrind installed) the instructions Redis executed per
 * message in the measured calls: within 0.2 % from run to run, so a change to the
 * script can be weighed without the machine's noise. `--script` runs an
 * edited copy of the script instead of lua/room_append-4n.lua.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { LUA_DIR } from '../../src/redis/scripts.js'
import { startRedis } from '../../test/helpers/redis.js'

const ROOMS = 5000
const PARTS = 235
const MESSAGE = JSON.stringify({ e: 'change', d: 'x'.repeat(110) })

const { values } = parseArgs({
  options: {
    script: { type: 'string' },
    calls: { type: 'string', default: '300' },
    callgrind: { type: 'boolean', default: false },
  },
})
const calls = Number(values.calls)
const lua = readFileSync(values.script ?? new URL('room_append-4n.lua', LUA_DIR), 'utf8')
if (values.callgrind && spawnSync('valgrind', ['--version']).error) {
  console.error('--callgrind needs valgrind (apt-get install valgrind)')
  process.exit(1)
}

const dir = mkdtempSync(join(tmpdir(), 'snapper-append-'))
const server = await startRedis([], {
  runner: values.callgrind
    ? ['valgrind', '--tool=callgrind', `--callgrind-out-file=${dir}/callgrind.out`]
    : [],
})
const redis = server.client()

/** callgrind_control: `-z` zeroes the counts before the measured calls, `-d` writes them after (callgrind.out.1). */
async function callgrind(command: '-z' | '-d'): Promise<void> {
  if (!values.callgrind) return
  await new Promise<void>((resolve, reject) =>
    spawn('callgrind_control', [command, String(server.pid)], { stdio: 'ignore' })
      .once('exit', code =>
        code === 0 ? resolve() : reject(new Error(`callgrind_control exited with ${code}`)),
      )
      .once('error', reject),
  )
}

async function cpuSeconds(): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1])
  return field('used_cpu_user') + field('used_cpu_sys')
}

let seed = 42
const nextRoom = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) % ROOMS
const sha = (await redis.script('LOAD', lua)) as string
let callNumber = 0

async function appendCall(): Promise<void> {
  const keys: string[] = []
  const args: string[] = ['1000', String(16 << 20), '86400', 'PUBLISH', 'micro', String(++callNumber)]
  for (let i = 0; i < PARTS; i++) {
    const room = `{user${nextRoom()}}`
    keys.push(`SNP:${room}:log`, `SNP:${room}:head`, `SNP:${room}:ch`, `SNP:${room}:track:`)
    args.push('0', '', '1', MESSAGE)
  }
  const reply = (await redis.evalsha(sha, keys.length, ...keys, ...args)) as unknown[]
  if (reply[0] !== 1) throw new Error(`the script refused a call: ${JSON.stringify(reply)}`)
}

try {
  for (let i = 0; i < 50; i++) await appendCall() // every room gets its head; the script is compiled
  await callgrind('-z')
  const before = await cpuSeconds()
  for (let i = 0; i < calls; i++) await appendCall()
  const cpu = (await cpuSeconds()) - before
  await callgrind('-d')
  const messages = calls * PARTS
  const label = `room_append-4n.lua${values.script ? ` (${values.script})` : ''}, ${calls} calls of ${PARTS} rooms`
  if (!values.callgrind) console.log(`${label}: Redis CPU ${((cpu * 1e6) / messages).toFixed(2)} µs/message`)
  else {
    const totals = /^(?:summary|totals): (\d+)/m.exec(readFileSync(join(dir, 'callgrind.out.1'), 'utf8'))
    console.log(`${label}: ${Math.round(Number(totals?.[1]) / messages)} instructions/message (callgrind)`)
  }
} finally {
  await server.stop()
  rmSync(dir, { recursive: true, force: true })
}
