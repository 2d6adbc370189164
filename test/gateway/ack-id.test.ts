import test from 'ava'
import { plainAckId } from '../../src/gateway/consumer.js'

test('plainAckId reads the id of an ack in the exact form snapper-consumer writes', t => {
  t.is(plainAckId('{"jsonrpc":"2.0","id":"Xy3_ab:1z","result":"OK"}'), 'Xy3_ab:1z')
})

test('plainAckId leaves everything else to JSON.parse', t => {
  for (const text of [
    '{"jsonrpc":"2.0","id":"a\\"b","result":"OK"}', // escaped quote: the id is not the raw text
    '{"jsonrpc":"2.0","id":"a\\\\b","result":"OK"}', // escaped backslash
    '{"jsonrpc":"2.0","id":"","result":"OK"}', // empty id: invalid in JSON-RPC
    '{"jsonrpc":"2.0","id":7,"result":"OK"}', // a number id
    '{"id":"a","jsonrpc":"2.0","result":"OK"}', // another key order
    '{"jsonrpc":"2.0","id":"a","result":"OK"} ', // trailing space
    '{"jsonrpc":"2.0","id":"a","result":"NO"}',
    '{"jsonrpc":"2.0","id":"a","error":{"message":"x","code":1}}',
    `{"jsonrpc":"2.0","id":"${'a'.repeat(300)}","result":"OK"}`,
  ])
    t.is(plainAckId(text), undefined, text)
})
