import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The compiled bench, as `npm run bench` runs it. */
const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url))

/** Runs `npm run bench -- <args>` to its end: its exit code and everything it printed. */
export async function runBench(args: readonly string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [RUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  return { code, output }
}
