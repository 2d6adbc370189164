/** KeyedQueue (src/sdk/producer/queue.ts): the producer's waiting calls, in order, taken out by key from anywhere. */
import test from 'ava'
import { KeyedQueue } from '../../src/sdk/producer/queue.js'

const queueOf = (...keys: number[]): KeyedQueue<number, string> => {
  const queue = new KeyedQueue<number, string>()
  for (const key of keys) queue.push(key, `v${key}`)
  return queue
}

test('entries go in the order pushed; unshift puts entries first, in their order', t => {
  const queue = queueOf(3, 4)
  queue.unshift([
    [1, 'v1'],
    [2, 'v2'],
  ])
  queue.push(5, 'v5')
  t.deepEqual([...queue.values()], ['v1', 'v2', 'v3', 'v4', 'v5'])
  t.is(queue.size, 5)
  t.is(queue.first, 'v1')
  t.is(queue.get(4), 'v4')
})

test('unshift into an empty queue, and of nothing, keeps head and tail right', t => {
  const queue = queueOf()
  queue.unshift([])
  t.is(queue.first, undefined)
  queue.unshift([[1, 'v1']])
  queue.push(2, 'v2')
  t.deepEqual([...queue.values()], ['v1', 'v2'])
  queue.unshift([])
  t.deepEqual([...queue.values()], ['v1', 'v2'])
})

test('delete takes an entry out of the head, the middle or the tail; a key not there is false', t => {
  const queue = queueOf(1, 2, 3, 4)
  t.true(queue.delete(2))
  t.true(queue.delete(1))
  t.true(queue.delete(4))
  t.false(queue.delete(4))
  t.deepEqual([...queue.values()], ['v3'])
  queue.push(5, 'v5')
  t.deepEqual([...queue.values()], ['v3', 'v5'])
  t.true(queue.delete(3))
  t.true(queue.delete(5))
  t.is(queue.size, 0)
  t.is(queue.first, undefined)
  queue.push(6, 'v6')
  t.deepEqual([...queue.values()], ['v6'])
  queue.clear()
  t.deepEqual([...queue.values()], [])
  t.is(queue.get(6), undefined)
})
