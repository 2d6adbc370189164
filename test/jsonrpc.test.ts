import { createRequire } from 'node:module'
import test from 'ava'
import fc from 'fast-check'
import { ERRORS, SnapperError, type ErrorCode } from '../src/errors.js'
import {
  classifyMessage,
  encodeError,
  encodeSuccess,
  MAX_PARAMS_DEPTH,
  parseMessage,
  rpcError,
  toRpcError,
  type RpcId,
  type RpcMessage,
} from '../src/jsonrpc.js'
import { encodeBulk } from '../src/producer/resp.js'
import { docVectors, wireText } from './helpers/doc-vectors.js'

/** The very jsonrpc-lite that snapper-producer's toa-net parses our replies with. */
const requireFromToaNet = createRequire(createRequire(import.meta.url).resolve('toa-net'))
const clientParser = requireFromToaNet('jsonrpc-lite') as { parse(text: string): { type: string } }

/** A logger that records what toRpcError logs. */
const recordingLog = () => {
  const lines: { fields: object; message: string }[] = []
  return { lines, error: (fields: object, message: string) => void lines.push({ fields, message }) }
}

// docs/producer-protocol.md §3.3: a title, the reply (an id and a result, or an error code and its reason), the wire.
for (const [title, reply, wire] of docVectors('producer-protocol', 'rpc-replies')) {
  const { id, result, error, reason } = reply as {
    id: RpcId | null
    result?: unknown
    error?: ErrorCode
    reason?: string
  }
  const json = error === undefined ? encodeSuccess(id!, result) : encodeError(id, rpcError(error, reason))
  test(`reply bytes: ${String(title)}`, t => {
    t.is(encodeBulk(json), wireText(wire))
    const type = clientParser.parse(json).type
    t.is(type, error === undefined ? 'success' : 'error', 'the client classifies it as a reply')
  })
}

test('every code of the table gives a reply the client accepts: standard ones without data', t => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const error = rpcError(code, code === 'UNAUTHORIZED' ? 'Error: x' : undefined)
    t.is(error.code, ERRORS[code].rpc)
    t.is(error.message, ERRORS[code].text)
    t.true(Number.isInteger(error.code) && error.message !== '', code)
    for (const id of [null, 'a:1', 0])
      t.is(clientParser.parse(encodeError(id, error)).type, 'error', `${code} with id ${id}`)
  }
  t.false('data' in rpcError('INVALID_REQUEST'))
  t.deepEqual(rpcError('BAD_FRAMING').data, { code: 'BAD_FRAMING' })
})

test('toRpcError: a SnapperError is its table entry, not logged', t => {
  const log = recordingLog()
  t.deepEqual(toRpcError(new SnapperError('INVALID_PARAMS'), log), {
    message: 'Invalid params',
    code: -32602,
  })
  t.deepEqual(toRpcError(new SnapperError('STORE_UNAVAILABLE', 'ECONNREFUSED 10.0.0.1'), log), {
    message: 'Storage unavailable, retry',
    code: -32003,
    data: { code: 'STORE_UNAVAILABLE', temporary: true },
  })
  t.is(log.lines.length, 0)
})

test('toRpcError: anything else is logged with its stack and answered as Internal error, never echoed', t => {
  const log = recordingLog()
  const bug = new TypeError("Cannot read properties of undefined (reading '0')")
  t.deepEqual(toRpcError(bug, log), { message: 'Internal error', code: -32603 })
  t.is(log.lines.length, 1)
  t.is((log.lines[0]!.fields as { err: unknown }).err, bug)
})

// docs/producer-protocol.md §3.2: a title, the payload, what it classifies as.
for (const [title, text, classified] of docVectors('producer-protocol', 'rpc-messages')) {
  const payload = text as string
  // A request or notification without params has them undefined, which JSON cannot write.
  const expected = classified as { kind: string; params?: unknown }
  if (expected.kind === 'request' || expected.kind === 'notification')
    expected.params = expected.params ?? undefined
  test(`classifies ${String(title)}`, t => {
    t.deepEqual(parseMessage(payload), expected as RpcMessage)
    t.deepEqual(parseMessage(Buffer.from(payload)), expected as RpcMessage)
    // A batch is jsonrpc-lite's array of results; we take none (the clients never send one).
    if (!payload.startsWith('['))
      t.is(clientParser.parse(payload).type, parseMessage(payload).kind as string, 'as jsonrpc-lite')
  })
}

test('any message of the usual keys classifies as jsonrpc-lite does (except error objects, not checked)', t => {
  const absent = fc.constant(undefined)
  const message = fc.record({
    jsonrpc: fc.oneof(fc.constant('2.0'), fc.constant('1.0'), absent),
    id: fc.oneof(fc.string(), fc.integer(), fc.double(), fc.constant(null), fc.object(), absent),
    method: fc.oneof(fc.string(), fc.integer(), fc.constant(null), absent),
    params: fc.oneof(fc.jsonValue(), absent),
    result: fc.oneof(fc.jsonValue(), absent),
    error: fc.oneof(fc.record({ message: fc.string(), code: fc.integer() }), fc.jsonValue(), absent),
  })
  fc.assert(
    fc.property(message, fields => {
      const text = JSON.stringify(fields)
      const ours = parseMessage(text).kind
      const theirs = clientParser.parse(text).type
      const isLenientError = ours === 'error' && theirs === 'invalid'
      if (ours !== theirs && !isLenientError) throw new Error(`${text}: ours ${ours}, jsonrpc-lite ${theirs}`)
    }),
    { numRuns: 3000 },
  )
  t.pass()
})

test('params deeper than the limit are refused; at the limit they pass', t => {
  const nest = (depth: number): unknown => (depth === 1 ? [] : [nest(depth - 1)])
  t.like(classifyMessage({ jsonrpc: '2.0', id: 'd', method: 'echo', params: nest(MAX_PARAMS_DEPTH) }), {
    kind: 'request',
  })
  t.deepEqual(
    classifyMessage({ jsonrpc: '2.0', id: 'd', method: 'echo', params: nest(MAX_PARAMS_DEPTH + 1) }),
    {
      kind: 'invalid',
      id: 'd',
      code: 'INVALID_REQUEST',
    },
  )
  // 100 000 levels: JSON.parse copes, the check is bounded, nothing throws.
  const deep = `{"jsonrpc":"2.0","id":"d","method":"echo","params":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
  t.deepEqual(parseMessage(deep), { kind: 'invalid', id: 'd', code: 'INVALID_REQUEST' })
  const deepObject = `{"jsonrpc":"2.0","method":"echo","params":${'{"a":'.repeat(50)}1${'}'.repeat(50)}}`
  t.deepEqual(parseMessage(deepObject), { kind: 'invalid', id: null, code: 'INVALID_REQUEST' })
})

test('any JSON value classifies without throwing, and a served one re-encodes', t => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.oneof(fc.string(), fc.integer(), fc.constant(null)), (params, id) => {
      for (const value of [params, { jsonrpc: '2.0', id, method: 'echo', params }]) {
        const message = classifyMessage(value)
        if (message.kind === 'request') JSON.parse(encodeSuccess(message.id, message.params))
      }
    }),
    { numRuns: 2000 },
  )
  fc.assert(
    fc.property(fc.string(), text => void parseMessage(text)),
    { numRuns: 2000 },
  )
  t.pass()
})
