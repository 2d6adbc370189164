/**
 * `node dist/bench/profile.js <file.cpuprofile|file.heapprofile> [top]`: the
 * functions that used the most CPU in a V8 profile (`npm run bench -- …
 * --profile DIR` writes one per server process), by self time and by total
 * time (self + callees); or, for an allocation-sampling profile, the
 * functions that allocated the most: the quick look before opening them in a
 * flame graph viewer (Chrome DevTools, speedscope).
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: readonly number[]
}

interface Profile {
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

function nameOf(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame
  const file = url.replace(/^.*\/(node_modules\/|dist\/)?/, (_, dir: string | undefined) => dir ?? '')
  return `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}`
}

export function summarize(profile: Profile, top: number): string {
  const byId = new Map(profile.nodes.map(node => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const selfUs = new Map<number, number>()
  let totalUs = 0
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt)
    totalUs += dt
  })
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!
    self.set(nameOf(node), (self.get(nameOf(node)) ?? 0) + us)
    // Each function on the stack counts once per sample, however deep its recursion.
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = nameOf(byId.get(at)!)
      if (seen.has(name)) continue
      seen.add(name)
      total.set(name, (total.get(name) ?? 0) + us)
    }
  }
  const idle = self.get('(idle) :0') ?? 0
  const busy = totalUs - idle
  const list = (map: Map<string, number>): string =>
    [...map]
      .filter(([name]) => !name.startsWith('(idle)') && !name.startsWith('(root)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([name, us]) =>
          `${((100 * us) / busy).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`,
      )
      .join('\n')
  return (
    `busy ${(busy / 1000).toFixed(0)} ms of ${(totalUs / 1000).toFixed(0)} ms profiled\n\n` +
    `self time:\n${list(self)}\n\ntotal time (self + callees):\n${list(total)}\n`
  )
}

interface HeapNode {
  readonly callFrame: ProfileNode['callFrame']
  readonly selfSize: number
  readonly children: readonly HeapNode[]
}

/** Bytes allocated (sampled) per function, from `HeapProfiler.stopSampling`. */
export function summarizeHeap(root: { head: HeapNode }, top: number): string {
  const self = new Map<string, number>()
  let total = 0
  const walk = (node: HeapNode): void => {
    const name = nameOf({ id: 0, callFrame: node.callFrame })
    self.set(name, (self.get(name) ?? 0) + node.selfSize)
    total += node.selfSize
    for (const child of node.children) walk(child)
  }
  walk(root.head)
  const rows = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(
      ([name, bytes]) =>
        `${((100 * bytes) / total).toFixed(1).padStart(5)}%  ${(bytes / 1048576).toFixed(1).padStart(7)} MB  ${name}`,
    )
  return `allocated (sampled) ${(total / 1048576).toFixed(1)} MB\n\n${rows.join('\n')}\n`
}

if (process.argv[1]?.endsWith('profile.js')) {
  const [file, top = '30'] = process.argv.slice(2)
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile.js <file.cpuprofile|file.heapprofile> [top]\n')
    process.exit(2)
  }
  const data = JSON.parse(readFileSync(file, 'utf8')) as Profile & { head: HeapNode }
  process.stdout.write(
    file.endsWith('.heapprofile') ? summarizeHeap(data, Number(top)) : summarize(data, Number(top)),
  )
}
