/**
 * The test vectors of the protocol documents. docs/<doc>.md holds each list
 * as a fenced block whose info string is `json vectors=<name>`, one JSON
 * array per line; the tests run exactly those, so the documents cannot drift
 * from what the code does.
 *
 * Wire bytes are written as a string (its UTF-8 bytes), or as a list of
 * parts joined: a string as is, `{"frame": x}` a RESP bulk string around x,
 * any other JSON value as its JSON text.
 */
import { readFileSync } from 'node:fs'

export type DocName = 'producer-protocol' | 'consumer-protocol'

/** Every vector of the block `name` in docs/<doc>.md; throws if there is no such block. */
export function docVectors(doc: DocName, name: string): unknown[][] {
  const text = readFileSync(new URL(`../../../docs/${doc}.md`, import.meta.url), 'utf8')
  const block = new RegExp(`^\`\`\`json vectors=${name}\\n([\\s\\S]*?)^\`\`\`$`, 'm').exec(text)
  if (!block) throw new Error(`docs/${doc}.md has no vectors block "${name}"`)
  return block[1]!
    .split('\n')
    .filter(line => line.trim() !== '')
    .map((line, i) => {
      const vector: unknown = JSON.parse(line)
      if (!Array.isArray(vector)) throw new Error(`docs/${doc}.md ${name}, line ${i + 1}: not an array`)
      return vector
    })
}

/** The text a wire description stands for (see above). */
export function wireText(wire: unknown): string {
  if (typeof wire === 'string') return wire
  if (!Array.isArray(wire)) throw new Error(`not a wire description: ${JSON.stringify(wire)}`)
  return wire
    .map(part => (typeof part === 'string' ? part : isFrame(part) ? bulk(part.frame) : JSON.stringify(part)))
    .join('')
}

function isFrame(part: unknown): part is { frame: unknown } {
  return typeof part === 'object' && part !== null && Object.keys(part).length === 1 && 'frame' in part
}

function bulk(payload: unknown): string {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload)
  return `$${Buffer.byteLength(text)}\r\n${text}\r\n`
}
