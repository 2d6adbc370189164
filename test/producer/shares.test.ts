/**
 * The node's shares of producer work on their own (src/producer/shares.ts):
 * who may read past producerSharedMaxPendingBytes, whose turn comes, and
 * that work of a closed connection stays counted until it is done. The
 * connections' side of it is in fairness.test.ts.
 */
import test from 'ava'
import { ProducerShares, type Share } from '../../src/producer/shares.js'

const BOUND = 4096

/** A connection's share, counting the turns it was given. */
function connect(shares: ProducerShares, producerId?: string): Share & { turns: number } {
  const share = Object.assign(
    shares.open(() => share.turns++),
    { turns: 0 },
  )
  if (producerId !== undefined) share.identify(producerId)
  return share
}

test('connections of one producer id share one share; another producer still reads', t => {
  const shares = new ProducerShares(BOUND)
  const [a1, a2] = [connect(shares, 'a'), connect(shares, 'a')]
  a1.hold(3000)
  a2.hold(3000) // each under half the bound, so under a share of its own
  t.false(a1.mayRead, 'producer a holds the whole bound: its connections wait')
  t.false(a2.mayRead)
  const b = connect(shares, 'b')
  t.true(b.mayRead)
  b.hold(1500)
  t.true(b.mayRead, 'b holds 1,500 of its share of 2,048')
  t.is(shares.waiting, 2)
})

test('connections whose token has no id are each a producer of their own', t => {
  const shares = new ProducerShares(BOUND)
  const [x, y] = [connect(shares), connect(shares)]
  x.hold(5000)
  t.false(x.mayRead)
  t.true(y.mayRead, 'y holds nothing, under its own share')
  t.is(shares.producers, 0, 'no producer kept by id')
})

test("a closed connection's work counts for its producer until done, then the next connection's turn comes", t => {
  const shares = new ProducerShares(BOUND)
  const closed = connect(shares, 'a')
  closed.hold(5000)
  closed.close()
  t.is(shares.bytes, 5000)

  const reconnected = connect(shares, 'a')
  t.false(reconnected.mayRead, 'a reconnecting producer does not get a fresh share')
  const other = connect(shares, 'b')
  t.true(other.mayRead)

  closed.release(5000) // stored in Redis after its connection closed
  t.is(shares.bytes, 0)
  t.is(reconnected.turns, 1, 'the waiting connection of a reads again')
  t.true(reconnected.mayRead)

  reconnected.close()
  other.close()
  t.is(shares.producers, 0, 'a producer with nothing open and nothing in flight is forgotten')
})

test('turns go round the producers, not their connections', t => {
  const shares = new ProducerShares(BOUND)
  const many = Array.from({ length: 4 }, () => connect(shares, 'many'))
  const one = connect(shares, 'one')
  for (const share of many) share.hold(1000)
  one.hold(2000) // 6,000: a share is 2,048 each
  for (const share of many) t.false(share.mayRead)
  t.true(one.mayRead, 'one holds 2,000 of its 2,048')
  one.hold(100)
  t.false(one.mayRead)
  t.is(shares.waiting, 5)

  many[0]!.release(1000) // 5,100: past the bound, and many holds 3,000 of its 2,048
  t.deepEqual([many[0]!.turns, one.turns], [0, 0])
  many[1]!.release(1000) // many holds 2,000, under its share: its first connection reads
  t.deepEqual([many[0]!.turns, one.turns], [1, 0])
  one.release(100) // 4,000, under the bound: the next turn is one's, not many's second connection
  t.deepEqual([many[1]!.turns, one.turns], [0, 1])
  many[2]!.release(1000) // 3,000: then many's again
  t.deepEqual(
    many.map(share => share.turns),
    [1, 1, 0, 0],
  )
})
