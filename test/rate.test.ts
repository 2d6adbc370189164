import test from 'ava'
import { TokenBucket } from '../src/rate.js'

test('TokenBucket starts full, refills perSec a second up to its burst, and a refused take takes nothing', t => {
  const bucket = new TokenBucket(1000, 100, 10)
  t.true(bucket.take(100, 10))
  t.false(bucket.take(1, 10), 'empty')
  t.false(bucket.take(6, 15), 'five refilled in 5 ms')
  t.true(bucket.take(5, 15), 'the refused take took nothing')
  t.true(bucket.take(100, 10_000), 'a long wait fills it')
  t.false(bucket.take(1, 10_000), 'but no more than the burst')
})

test('TokenBucket: takes at fractions of a ms lose no refill; a whole ms is seen at once', t => {
  const bucket = new TokenBucket(1000, 10, 0.5)
  t.true(bucket.take(10, 0.5))
  let admitted = 0
  for (let nowMs = 0.75; nowMs <= 100.5; nowMs += 0.25) if (bucket.take(1, nowMs)) admitted++
  t.is(admitted, 100, 'one unit a ms for 100 ms')
  const slow = new TokenBucket(3, 1, 0)
  t.true(slow.take(1, 0))
  t.false(slow.take(1, 333), '0.999 of a unit')
  t.true(slow.take(1, 334), '1.002 units')
})

test('TokenBucket: large rates and bursts (beyond what fits in a small integer) count exactly', t => {
  const bucket = new TokenBucket(2 ** 31 - 1, 2 ** 31 - 1, 0)
  t.true(bucket.take(2 ** 31 - 1, 0))
  t.false(bucket.take(1, 0))
  t.true(bucket.take(2 ** 31 - 1, 1000))
})
