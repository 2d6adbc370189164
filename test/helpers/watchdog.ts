import { spawn, type ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'

/**
 * Servers a test process starts (redis-server, cluster nodes, nginx, the CLI)
 * die with it, however it ends: ava kills a worker on its timeout before
 * `test.after.always` runs, a file can crash, a run can be SIGKILLed. An
 * orphan would keep its ports and files, and hold the worker's stderr if it
 * inherited it (ava waits for its end: the whole run would hang).
 *
 *   test process ──pipe: "pid" per server started, "-pid" once it exited──▶ watchdog (sh + awk)
 *
 * The pipe ends with the test process, however it ends; then the watchdog
 * SIGKILLs every server still running, and the process group of each that
 * leads one: nginx's and the CLI's workers (both are started detached).
 * A pid is struck off once its process exited, so a reused pid is never hit.
 */
const SCRIPT = `
awk '{ if ($1 > 0) running[$1] = 1; else delete running[-$1] } END { for (pid in running) print pid }' |
while read -r pid; do kill -KILL "-$pid" "$pid" 2>/dev/null; done
`

let watchdog: ChildProcess | undefined

/** Has `child` SIGKILLed (with its process group) if this process ends while it runs. Returns `child`. */
export function dieWithThisProcess(child: ChildProcess): ChildProcess {
  if (child.pid === undefined) return child // it did not start: its 'error' event says why
  const pipe = startWatchdog()
  pipe.write(`${child.pid}\n`)
  child.once('exit', () => pipe.write(`-${child.pid}\n`))
  return child
}

function startWatchdog(): Socket {
  if (!watchdog) {
    watchdog = spawn('sh', ['-c', SCRIPT], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true, // a Ctrl-C or a signal to our process group leaves it to do its job
    })
    // No sh, or it was killed: nothing watches; the helpers' own stop() still runs.
    watchdog.on('error', () => {})
    watchdog.stdin!.on('error', () => {})
    // Neither the watchdog nor its pipe keeps this process alive.
    watchdog.unref()
    ;(watchdog.stdin as Socket).unref()
  }
  return watchdog.stdin as Socket
}
