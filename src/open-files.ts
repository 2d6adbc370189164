/**
 * A process's open files, from Linux's /proc: how many it may hold (start-up
 * warns when a full process would need more, src/cli/open-files-budget.ts; the bench deals its consumers
 * over processes by it) and how many it holds (/metrics).
 */
import { readFileSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'

/**
 * A process's open-files limit: the soft one, which children inherit (Node
 * raises its own to the hard one at start); Infinity when unlimited. Throws
 * where there is no /proc (not Linux).
 */
export function openFilesLimit(pid: number = process.pid): number {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8')
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1]
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
}

/**
 * Files this process holds open, without listing them on the event loop (a
 * listing costs about 0.8 µs per file: 16 ms at 20,000 sockets). Linux 6.2+
 * gives the count as the size of /proc/self/fd (a bitmap count, ~20 µs
 * whatever the number); an older kernel says 0 there, and the directory is
 * listed off the event loop.
 */
export async function countOpenFiles(): Promise<number> {
  const { size } = await stat('/proc/self/fd')
  if (size > 0) return size
  return (await readdir('/proc/self/fd')).length - 1 // the listing held one of them
}
