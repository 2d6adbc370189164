/**
 * Reads V8 heap snapshots (`v8.writeHeapSnapshot()` files) and compares two of the same
 * process: what was added between them by constructor, and who holds the objects that are new
 * in the second (an object keeps its snapshot id from one snapshot to the next in one process).
 * Used by bench/micro/session-heap.ts, after both snapshots are written, so that the analysis's
 * own strings and maps are not part of what it measures.
 */
import { readFileSync } from 'node:fs'

/** One snapshot's nodes and edges, in V8's flat layout (a node is `fieldCount` numbers). */
export class HeapSnapshot {
  readonly #nodes: number[]
  readonly #edges: number[]
  readonly #strings: string[]
  readonly #nodeTypes: string[]
  readonly #edgeTypes: string[]
  readonly #nodeWidth: number
  readonly #edgeWidth: number
  readonly #field: { type: number; name: number; id: number; size: number; edges: number }
  readonly #edgeField: { type: number; name: number; to: number }
  /** Each node's first edge, by node number. */
  readonly #firstEdge: Uint32Array
  /** Retainers in compressed rows: for node k, `#retainerEdge[#retainerStart[k] .. #retainerStart[k + 1]]`. */
  #retainerStart: Uint32Array | undefined
  #retainerEdge: Uint32Array | undefined
  #retainerNode: Uint32Array | undefined

  constructor(file: string) {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as {
      snapshot: {
        meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] }
      }
      nodes: number[]
      edges: number[]
      strings: string[]
    }
    const meta = raw.snapshot.meta
    this.#nodes = raw.nodes
    this.#edges = raw.edges
    this.#strings = raw.strings
    this.#nodeTypes = meta.node_types[0]
    this.#edgeTypes = meta.edge_types[0]
    this.#nodeWidth = meta.node_fields.length
    this.#edgeWidth = meta.edge_fields.length
    const at = (fields: string[], name: string): number => fields.indexOf(name)
    this.#field = {
      type: at(meta.node_fields, 'type'),
      name: at(meta.node_fields, 'name'),
      id: at(meta.node_fields, 'id'),
      size: at(meta.node_fields, 'self_size'),
      edges: at(meta.node_fields, 'edge_count'),
    }
    this.#edgeField = {
      type: at(meta.edge_fields, 'type'),
      name: at(meta.edge_fields, 'name_or_index'),
      to: at(meta.edge_fields, 'to_node'),
    }
    this.#firstEdge = new Uint32Array(this.count + 1)
    for (let k = 0, edge = 0; k < this.count; k++) {
      this.#firstEdge[k] = edge
      edge += this.#nodes[k * this.#nodeWidth + this.#field.edges]! * this.#edgeWidth
    }
    this.#firstEdge[this.count] = this.#edges.length
  }

  get count(): number {
    return this.#nodes.length / this.#nodeWidth
  }

  id(k: number): number {
    return this.#nodes[k * this.#nodeWidth + this.#field.id]!
  }

  size(k: number): number {
    return this.#nodes[k * this.#nodeWidth + this.#field.size]!
  }

  type(k: number): string {
    return this.#nodeTypes[this.#nodes[k * this.#nodeWidth + this.#field.type]!]!
  }

  /** What a node is: its constructor for objects (`Outbox`, `Map`), its name for closures, else `(type)`. */
  label(k: number): string {
    const type = this.type(k)
    if (type !== 'object' && type !== 'closure' && type !== 'native') return `(${type})`
    return this.#strings[this.#nodes[k * this.#nodeWidth + this.#field.name]!] || `(anonymous ${type})`
  }

  /** Bytes and count of every node, by label. */
  byLabel(): Map<string, Tally> {
    const tallies = new Map<string, Tally>()
    for (let k = 0; k < this.count; k++) add(tallies, this.label(k), this.size(k))
    return tallies
  }

  /** The ids of every node. */
  ids(): Set<number> {
    const ids = new Set<number>()
    for (let k = 0; k < this.count; k++) ids.add(this.id(k))
    return ids
  }

  /**
   * Who holds node k: up to `depth` steps of its strongest retainer, each `Label.field`, stopping at
   * the first instance of an application class (`(array) <- Map.table <- ConsumerLink.#rooms`).
   */
  holders(k: number, depth = 4): string {
    this.#indexRetainers()
    const path: string[] = [this.label(k)]
    const seen = new Set<number>([k])
    for (let step = 0, child = k; step < depth; step++) {
      const holder = this.#strongestRetainer(child)
      if (holder === undefined || seen.has(holder.node)) break
      seen.add(holder.node)
      path.push(`${this.label(holder.node)}.${holder.field}`)
      if (this.#isDomainObject(holder.node)) break
      child = holder.node
    }
    return path.join(' <- ')
  }

  #isDomainObject(k: number): boolean {
    return this.type(k) === 'object' && !GENERIC.has(this.label(k))
  }

  #strongestRetainer(k: number): { node: number; field: string } | undefined {
    let best: { node: number; edge: number; rank: number } | undefined
    for (let r = this.#retainerStart![k]!; r < this.#retainerStart![k + 1]!; r++) {
      const edge = this.#retainerEdge![r]!
      const node = this.#retainerNode![r]!
      const kind = this.#edgeTypes[this.#edges[edge + this.#edgeField.type]!]!
      if (kind === 'weak' || kind === 'shortcut') continue
      const parentType = this.type(node)
      const rank =
        (parentType === 'synthetic' ? 4 : 0) +
        (kind === 'property' || kind === 'context' || kind === 'internal' ? 0 : 1) +
        (this.#isDomainObject(node) ? 0 : 1)
      if (best === undefined || rank < best.rank) best = { node, edge, rank }
    }
    if (best === undefined) return undefined
    const kind = this.#edgeTypes[this.#edges[best.edge + this.#edgeField.type]!]!
    const name = this.#edges[best.edge + this.#edgeField.name]!
    const field = kind === 'element' ? '[]' : kind === 'hidden' ? '[hidden]' : this.#strings[name]!
    // A hash table's slots are numbered: one key for all of them.
    return { node: best.node, field: /^\d+$/.test(field) ? '[]' : field }
  }

  #indexRetainers(): void {
    if (this.#retainerStart) return
    const to = (edge: number): number => this.#edges[edge + this.#edgeField.to]! / this.#nodeWidth
    const start = new Uint32Array(this.count + 1)
    for (let edge = 0; edge < this.#edges.length; edge += this.#edgeWidth) start[to(edge) + 1]!++
    for (let k = 0; k < this.count; k++) start[k + 1]! += start[k]!
    const fill = start.slice(0, this.count)
    const edges = new Uint32Array(start[this.count]!)
    const nodes = new Uint32Array(start[this.count]!)
    for (let k = 0; k < this.count; k++)
      for (let edge = this.#firstEdge[k]!; edge < this.#firstEdge[k + 1]!; edge += this.#edgeWidth) {
        const slot = fill[to(edge)]!++
        edges[slot] = edge
        nodes[slot] = k
      }
    this.#retainerStart = start
    this.#retainerEdge = edges
    this.#retainerNode = nodes
  }
}

export interface Tally {
  count: number
  bytes: number
}

/** Containers and V8 internals: a holder's walk goes past them to the object that owns them. */
const GENERIC = new Set([
  'Object',
  'Array',
  'Map',
  'Set',
  'Promise',
  'system / Context',
  '(anonymous object)',
])

export function add(tallies: Map<string, Tally>, key: string, bytes: number): void {
  const tally = tallies.get(key)
  if (tally) {
    tally.count++
    tally.bytes += bytes
  } else tallies.set(key, { count: 1, bytes })
}

/** What `after` holds more than `before`, by label (the two of one process). */
export function labelGrowth(before: HeapSnapshot, after: HeapSnapshot): Map<string, Tally> {
  const growth = after.byLabel()
  for (const [label, was] of before.byLabel()) {
    const now = growth.get(label) ?? { count: 0, bytes: 0 }
    growth.set(label, { count: now.count - was.count, bytes: now.bytes - was.bytes })
  }
  return growth
}

/** The nodes of `after` that `before` did not have, by their holders' path. */
export function newNodesByHolders(before: HeapSnapshot, after: HeapSnapshot): Map<string, Tally> {
  const old = before.ids()
  const tallies = new Map<string, Tally>()
  for (let k = 0; k < after.count; k++)
    if (!old.has(after.id(k))) add(tallies, after.holders(k), after.size(k))
  return tallies
}
