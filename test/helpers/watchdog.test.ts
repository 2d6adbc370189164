/**
 * A test process that dies without stopping its servers (ava's timeout, a
 * crash, a SIGKILL) takes them with it: its watchdog kills them. Chromium
 * needs none: it ends when the pipe from its driver closes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import test, { type ExecutionContext } from 'ava'
import { eventually, within } from './eventually.js'

/** A test process in miniature: starts redis-server and nginx with the helpers, prints redis-server's pid, waits. */
const OWNER = `
import { startRedis } from ${JSON.stringify(new URL('./redis.js', import.meta.url).href)}
import { startNginx } from ${JSON.stringify(new URL('./nginx.js', import.meta.url).href)}
const redis = await startRedis()
await startNginx(redis.port, 1) // its upstream need not answer: nginx only has to run
console.log(redis.pid)
setInterval(() => {}, 60_000)
`

test('redis-server and nginx (with its workers) die with the test process that started them, SIGKILLed', async t => {
  const { child: owner, line } = await runScript(t, OWNER, 'the servers to start')
  const redis = Number(line)
  const nginx = childrenOf(owner.pid!).find(pid => readText(`/proc/${pid}/comm`) === 'nginx\n')!
  const group = (): number[] => livePids().filter(pid => groupOf(pid) === nginx)
  t.teardown(() => {
    // Only if the watchdog failed: nothing may outlive the test.
    for (const pid of [redis, ...group()]) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  })
  t.true(isAlive(redis), 'redis-server runs while its owner does')
  t.true(group().length >= 2, 'nginx runs, a master and its worker')

  owner.kill('SIGKILL')
  await eventually(() => !isAlive(redis) && group().length === 0, {
    what: () =>
      `redis-server ${redis} and nginx's group ${nginx} (${group().join(' ')}) to die with their owner`,
    timeoutMs: 5000,
  })
  t.pass()
})

/** A test process driving Chromium through the browser tests' helper: prints its pid once a page is open, waits. */
const DRIVER = `
import { launchChromium } from ${JSON.stringify(new URL('./chromium.js', import.meta.url).href)}
const browser = await launchChromium({ teardown() {} })
await (await browser.newPage()).goto('about:blank')
console.log(process.pid)
setInterval(() => {}, 60_000)
`

test('Chromium (every process of it) dies with the test process that drives it, SIGKILLed: no watchdog needed', async t => {
  const { child: driver } = await runScript(t, DRIVER, 'Chromium to open a page')
  // Every process of this Chromium names its profile: renderers, zygotes, and the crash handlers it detaches.
  const [main] = childrenOf(driver.pid!).filter(pid => readText(`/proc/${pid}/comm`) === 'chromium\n')
  const profile = /--user-data-dir=([^\0]+)/.exec(readText(`/proc/${main}/cmdline`))?.[1]
  if (!profile) return t.fail(`no Chromium with a profile under the driver (${main})`)
  const browser = (): number[] => livePids().filter(pid => readText(`/proc/${pid}/cmdline`).includes(profile))
  t.teardown(() => {
    for (const pid of browser()) process.kill(pid, 'SIGKILL') // only if it outlived its driver
  })
  t.true(browser().length >= 2, `Chromium runs, a browser and its helpers (${browser().join(' ')})`)

  driver.kill('SIGKILL')
  await eventually(() => browser().length === 0, {
    what: () => `Chromium's processes (${browser().join(' ')}) to end with their driver`,
    timeoutMs: 10_000,
  })
  t.pass()
})

/** Runs a module script as a process of its own (SIGKILLed at the test's end); resolves with its first output. */
async function runScript(
  t: ExecutionContext,
  script: string,
  what: string,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => child.kill('SIGKILL'))
  const [line] = (await within(once(child.stdout!, 'data'), 30_000, what)) as [Buffer]
  return { child, line: String(line) }
}

/** Processes that exist and are not zombies (a reparented zombie waits for its reaper). */
function livePids(): number[] {
  return readdirSync('/proc')
    .filter(name => /^\d+$/.test(name))
    .map(Number)
    .filter(isAlive)
}

/** The fields of /proc/<pid>/stat after the command's name: state, ppid, pgrp, … */
function statOf(pid: number): string[] | undefined {
  const stat = readText(`/proc/${pid}/stat`)
  return stat ? stat.slice(stat.lastIndexOf(')') + 2).split(' ') : undefined
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return '' // the process is gone
  }
}

const isAlive = (pid: number): boolean => ![undefined, 'Z', 'X'].includes(statOf(pid)?.[0])
const groupOf = (pid: number): number => Number(statOf(pid)?.[2])
const childrenOf = (pid: number): number[] => livePids().filter(child => statOf(child)?.[1] === String(pid))
