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
} from '../src/jsonrpc.js'
import { encodeBulk } from '../src/producer/resp.js'

/** The very jsonrpc-lite that snapper-producer's toa-net parses our replies with. */
const requireFromToaNet = createRequire(createRequire(import.meta.url).resolve('toa-net'))
const clientParser = requireFromToaNet('jsonrpc-lite') as { parse(text: string): { type: string } }

/** A logger that records what toRpcError logs. */
const recordingLog = () => {
  const lines: { fields: object; message: string }[] = []
  return { lines, error: (fields: object, message: string) => void lines.push({ fields, message }) }
}

// Reply bytes exactly as in the spec's dumps (§4.3, §5, §6, §8).
const replies: [string, () => string, string][] = [
  [
    'auth OK',
    () => encodeSuccess('k5uu:1', 'OK'),
    '$45\r\n{"jsonrpc":"2.0","id":"k5uu:1","result":"OK"}\r\n',
  ],
  ['subscribe 1', () => encodeSuccess('k5uu:2', 1), '$42\r\n{"jsonrpc":"2.0","id":"k5uu:2","result":1}\r\n'],
  [
    'consumers',
    () => encodeSuccess('k5uu:4', { length: 0, android: 0, ios: 0, web: 0 }),
    '$81\r\n{"jsonrpc":"2.0","id":"k5uu:4","result":{"length":0,"android":0,"ios":0,"web":0}}\r\n',
  ],
  [
    'echo',
    () => encodeSuccess('k5uu:5', ['producer']),
    '$53\r\n{"jsonrpc":"2.0","id":"k5uu:5","result":["producer"]}\r\n',
  ],
  [
    'echo split',
    () => encodeSuccess('a:7', ['split']),
    '$47\r\n{"jsonrpc":"2.0","id":"a:7","result":["split"]}\r\n',
  ],
  [
    'Method not found',
    () => encodeError('k5uu:6', rpcError('METHOD_NOT_FOUND')),
    '$84\r\n{"jsonrpc":"2.0","id":"k5uu:6","error":{"message":"Method not found","code":-32601}}\r\n',
  ],
  [
    'Method not found a:13',
    () => encodeError('a:13', rpcError('METHOD_NOT_FOUND')),
    '$82\r\n{"jsonrpc":"2.0","id":"a:13","error":{"message":"Method not found","code":-32601}}\r\n',
  ],
  [
    'Invalid params',
    () => encodeError('a:9', rpcError('INVALID_PARAMS')),
    '$79\r\n{"jsonrpc":"2.0","id":"a:9","error":{"message":"Invalid params","code":-32602}}\r\n',
  ],
  [
    'Unauthorized, bad signature',
    () => encodeError('a:1', rpcError('UNAUTHORIZED', 'Error: Invalid signature')),
    '$108\r\n{"jsonrpc":"2.0","id":"a:1","error":{"message":"Unauthorized","code":401,"data":"Error: Invalid signature"}}\r\n',
  ],
  [
    'Unauthorized, expired',
    () =>
      encodeError(
        'a:1',
        rpcError(
          'UNAUTHORIZED',
          'Error: Expired: Thu Jan 01 1970 00:16:40 GMT+0000 (Coordinated Universal Time)',
        ),
      ),
    '$162\r\n{"jsonrpc":"2.0","id":"a:1","error":{"message":"Unauthorized","code":401,"data":"Error: Expired: Thu Jan 01 1970 00:16:40 GMT+0000 (Coordinated Universal Time)"}}\r\n',
  ],
  [
    'Parse error',
    () => encodeError(null, rpcError('PARSE_ERROR')),
    '$75\r\n{"jsonrpc":"2.0","id":null,"error":{"message":"Parse error","code":-32700}}\r\n',
  ],
  [
    'Frame too large',
    () => encodeError(null, rpcError('FRAME_TOO_LARGE')),
    '$113\r\n{"jsonrpc":"2.0","id":null,"error":{"message":"Frame too large","code":-32600,"data":{"code":"FRAME_TOO_LARGE"}}}\r\n',
  ],
  [
    'Storage unavailable (temporary)',
    () => encodeError(7, rpcError('STORE_UNAVAILABLE')),
    '$140\r\n{"jsonrpc":"2.0","id":7,"error":{"message":"Storage unavailable, retry","code":-32003,"data":{"code":"STORE_UNAVAILABLE","temporary":true}}}\r\n',
  ],
  [
    'a numeric id is echoed as a number',
    () => encodeSuccess(14, {}),
    '$37\r\n{"jsonrpc":"2.0","id":14,"result":{}}\r\n',
  ],
  [
    'undefined result is null',
    () => encodeSuccess('x:1', undefined),
    '$42\r\n{"jsonrpc":"2.0","id":"x:1","result":null}\r\n',
  ],
]
for (const [title, build, bytes] of replies) {
  test(`reply bytes: ${title}`, t => {
    t.is(encodeBulk(build()), bytes)
    const type = clientParser.parse(build()).type
    t.is(type, build().includes('"error"') ? 'error' : 'success', 'the client classifies it as a reply')
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

// Classification, in jsonrpc-lite's order (spec §3.2).
const cases: [string, string, unknown][] = [
  [
    'a request',
    '{"jsonrpc":"2.0","id":"k5uu:2","method":"subscribe","params":["projects/5","t.VaB"]}',
    { kind: 'request', id: 'k5uu:2', method: 'subscribe', params: ['projects/5', 't.VaB'] },
  ],
  [
    'a request without params',
    '{"jsonrpc":"2.0","id":3,"method":"echo"}',
    { kind: 'request', id: 3, method: 'echo', params: undefined },
  ],
  [
    'id 0 is valid',
    '{"jsonrpc":"2.0","id":0,"method":"echo","params":{}}',
    { kind: 'request', id: 0, method: 'echo', params: {} },
  ],
  [
    'a notification (no id key)',
    '{"jsonrpc":"2.0","method":"publish","params":[["r","m"]]}',
    { kind: 'notification', method: 'publish', params: [['r', 'm']] },
  ],
  ['invalid JSON', '{not json', { kind: 'invalid', id: null, code: 'PARSE_ERROR' }],
  ['an empty payload', '', { kind: 'invalid', id: null, code: 'PARSE_ERROR' }],
  [
    'a batch (array)',
    '[{"jsonrpc":"2.0","id":1,"method":"echo"}]',
    { kind: 'invalid', id: null, code: 'INVALID_REQUEST' },
  ],
  ['a number', '1', { kind: 'invalid', id: null, code: 'INVALID_REQUEST' }],
  ['null', 'null', { kind: 'invalid', id: null, code: 'INVALID_REQUEST' }],
  [
    'no jsonrpc, id recovered',
    '{"id":"x:1","method":"echo"}',
    { kind: 'invalid', id: 'x:1', code: 'INVALID_REQUEST' },
  ],
  [
    'jsonrpc 1.0',
    '{"jsonrpc":"1.0","id":"x:1","method":"echo"}',
    { kind: 'invalid', id: 'x:1', code: 'INVALID_REQUEST' },
  ],
  [
    'params a string',
    '{"jsonrpc":"2.0","id":"x:2","method":"echo","params":"s"}',
    { kind: 'invalid', id: 'x:2', code: 'INVALID_REQUEST' },
  ],
  [
    'params null',
    '{"jsonrpc":"2.0","id":"x:3","method":"echo","params":null}',
    { kind: 'invalid', id: 'x:3', code: 'INVALID_REQUEST' },
  ],
  [
    'method empty',
    '{"jsonrpc":"2.0","id":"x:4","method":""}',
    { kind: 'invalid', id: 'x:4', code: 'INVALID_REQUEST' },
  ],
  [
    'method a number',
    '{"jsonrpc":"2.0","id":"x:5","method":5}',
    { kind: 'invalid', id: 'x:5', code: 'INVALID_REQUEST' },
  ],
  [
    'a success (a consumer acks a batch)',
    '{"jsonrpc":"2.0","id":"x:6","result":"OK"}',
    { kind: 'success', id: 'x:6', result: 'OK' },
  ],
  [
    'an error (a consumer nacks a batch)',
    '{"jsonrpc":"2.0","id":"x:7","error":{"message":"no","code":1}}',
    { kind: 'error', id: 'x:7', error: { message: 'no', code: 1 } },
  ],
  [
    'an error with id null',
    '{"jsonrpc":"2.0","id":null,"error":{"message":"no","code":1}}',
    { kind: 'error', id: null, error: { message: 'no', code: 1 } },
  ],
  [
    'a success with id null',
    '{"jsonrpc":"2.0","id":null,"result":"OK"}',
    { kind: 'invalid', id: null, code: 'INVALID_REQUEST' },
  ],
  [
    'an error that is not an object',
    '{"jsonrpc":"2.0","id":"x:8","error":"no"}',
    { kind: 'invalid', id: 'x:8', code: 'INVALID_REQUEST' },
  ],
  [
    'an id with neither method, result nor error',
    '{"jsonrpc":"2.0","id":"x:9"}',
    { kind: 'invalid', id: 'x:9', code: 'INVALID_REQUEST' },
  ],
  [
    'id "" is not an id',
    '{"jsonrpc":"2.0","id":"","method":"echo"}',
    { kind: 'invalid', id: null, code: 'INVALID_REQUEST' },
  ],
  [
    'id 1.5 is not an id',
    '{"jsonrpc":"2.0","id":1.5,"method":"echo"}',
    { kind: 'invalid', id: null, code: 'INVALID_REQUEST' },
  ],
  [
    'id null is not an id',
    '{"jsonrpc":"2.0","id":null,"method":"echo"}',
    { kind: 'invalid', id: null, code: 'INVALID_REQUEST' },
  ],
  [
    'id an object',
    '{"jsonrpc":"2.0","id":{},"method":"echo"}',
    { kind: 'invalid', id: null, code: 'INVALID_REQUEST' },
  ],
  [
    'a notification of a bad shape',
    '{"jsonrpc":"2.0","method":7}',
    { kind: 'invalid', id: null, code: 'INVALID_REQUEST' },
  ],
]
for (const [title, text, expected] of cases) {
  test(`classifies ${title}`, t => {
    t.deepEqual(parseMessage(text), expected)
    t.deepEqual(parseMessage(Buffer.from(text)), expected)
    // A batch is jsonrpc-lite's array of results; we take none (the clients never send one).
    if (!text.startsWith('['))
      t.is(clientParser.parse(text).type, parseMessage(text).kind as string, 'as jsonrpc-lite')
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
