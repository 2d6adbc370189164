/**
 * The SDK as a user's project sees it: `snapper/producer` and
 * `snapper/consumer` resolve through package.json "exports" (at run time and
 * for TypeScript), and their declarations compile in a strict project with
 * neither Node's nor the DOM's types and skipLibCheck off, without `any`.
 * Misuse fails to compile.
 */
import { execFile } from 'node:child_process'
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import test from 'ava'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc')

const APP = `
import { Producer, SnapperError, SDK_ERRORS, type Receipt, type ConsumerCounts, type Publication } from 'snapper/producer'
import { Consumer, type MessageMeta, type Gap, type ConsumerState, type StateDetails } from 'snapper/consumer'

export async function main(): Promise<void> {
  const producer = new Producer({ host: '127.0.0.1', port: 7700, secret: 's', id: 'api-1' })
  await producer.connect()
  const one: number = await producer.publish('room', 'message')
  const count: number = await producer.publish([['room', 'a'], ['other', 'b']])
  const rooms: string[] = ['a', 'b']
  await producer.publish(rooms.map(room => [room, 'inferred as pairs in the call']))
  const annotated: Publication[] = rooms.map(room => [room, 'a batch built apart, annotated'])
  await producer.publish(annotated)
  const constant = rooms.map(room => [room, 'or made of constant pairs'] as const)
  await producer.publish(constant)
  const unannotated = rooms.map(room => [room, 'string[][]: any length'])
  // @ts-expect-error a batch built apart without annotation is string[][], whose arrays may have any length
  await producer.publish(unannotated)
  new Producer({ token: 'a producer token', id: 'api-2' })
  // @ts-expect-error neither secret nor token
  new Producer({ id: 'api-3' })
  // @ts-expect-error both secret and token
  new Producer({ secret: 's', token: 't', id: 'api-4' })
  const joined: 1 | null = await producer.subscribe('room', 'w.abc')
  const left: 1 | null = await producer.unsubscribe('room', 'w.abc')
  const counts: ConsumerCounts = await producer.consumers('55a07f2dee06c78e1357b0ad')
  const { id } = await producer.track('room', 'message', { escalateAfterMs: 30000 })
  const receipt: Receipt = await producer.receipt(id)
  const firstAck: string | undefined = receipt.acked[0]?.consumerId
  const token: string = producer.signConsumerToken({ userId: '55a07f2dee06c78e1357b0ad', source: 'ios' })
  producer.on('state', state => console.log(state.toUpperCase()))

  const consumer = new Consumer('https://push.example.com', { token, codec: 'msgpack', maxRoomsRemembered: 50_000 })
  consumer.on('message', (message: string, meta: MessageMeta) => console.log(message.length, meta.room, meta.seq + 1))
  consumer.on('gap', (gap: Gap) => console.log(gap.room, gap.missed ?? 'unknown'))
  consumer.on('state', (state: ConsumerState, details: StateDetails) => console.log(state, details.retryInMs))
  const consumerId: string = await consumer.connect()
  const idOnceOpen: string | undefined = consumer.id
  consumer.close()
  await producer.close()

  try {
    await producer.publish('room', 'late')
  } catch (err) {
    if (err instanceof SnapperError && err.code === SDK_ERRORS.CLOSED) console.log(err.reason, err.isTemporary)
    if (err instanceof SnapperError && err.code === SDK_ERRORS.CONNECTION) console.log(err.detail?.length)
    if (err instanceof SnapperError && err.storedUpTo !== undefined) console.log(err.storedUpTo + 1)
  }
  console.log(one, count, joined, left, counts.web, firstAck, receipt.escalated, consumerId, idOnceOpen)

  // @ts-expect-error a room needs a message
  await producer.publish('room')
  // @ts-expect-error messages are strings
  await producer.publish([['room', 1]])
  // @ts-expect-error no such codec
  new Consumer('https://push.example.com', { token, codec: 'xml' })
  // @ts-expect-error a count is a number
  new Consumer('https://push.example.com', { token, maxRoomsRemembered: '50000' })
  // @ts-expect-error a message listener gets a string and its meta
  consumer.on('message', (message: number) => console.log(message))
  // @ts-expect-error no such event
  consumer.on('data', () => {})
  // @ts-expect-error the id is read-only
  consumer.id = 'x'
}
`

test('the declarations compile in a strict project without Node or DOM types; misuse does not', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'snapper-sdk-types-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(ROOT, join(dir, 'node_modules', 'snapper'), 'dir')
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        noImplicitOverride: true,
        skipLibCheck: false,
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        lib: ['ES2022'],
        types: [],
        noEmit: true,
      },
      files: ['app.ts', 'console.d.ts'],
    }),
  )
  writeFileSync(join(dir, 'console.d.ts'), 'declare const console: { log(...values: unknown[]): void }\n')
  writeFileSync(join(dir, 'app.ts'), APP)
  const result = await promisify(execFile)(process.execPath, [TSC, '-p', dir]).then(
    ({ stdout }) => stdout,
    (err: { stdout?: string }) => `tsc failed:\n${err.stdout ?? String(err)}`,
  )
  t.is(result, '')
})

test('no `any` in the public declarations', t => {
  const found: string[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (path.endsWith('.d.ts') && /\bany\b/.test(readFileSync(path, 'utf8'))) found.push(path)
    }
  }
  walk(join(ROOT, 'dist/src/sdk'))
  t.deepEqual(found, [])
})

test('the package exports resolve at run time', async t => {
  const producer = (await import('snapper/producer' as string)) as Record<string, unknown>
  const consumer = (await import('snapper/consumer' as string)) as Record<string, unknown>
  t.is(typeof producer.Producer, 'function')
  t.is(typeof producer.SnapperError, 'function')
  t.is(typeof consumer.Consumer, 'function')
  t.is(consumer.SnapperError, producer.SnapperError, 'one error class for both')
})
