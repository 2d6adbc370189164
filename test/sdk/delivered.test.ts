/**
 * DeliveredPositions (src/sdk/consumer/delivered.ts): what the consumer drops
 * as sent again, by room, for the rooms delivered to most recently. Without a
 * broker; hostile-server.test.ts and restart.test.ts check the same through a
 * Consumer.
 */
import test from 'ava'
import { DeliveredPositions } from '../../src/sdk/consumer/delivered.js'

/** Of the messages (storedAtMs, seq) of one room, those handed out, in order. */
function handedOut(
  positions: DeliveredPositions,
  room: string,
  messages: readonly [number, number][],
): string[] {
  const position = positions.positionOf(room)
  return messages.filter(([storedAtMs, seq]) => position.advanceTo(storedAtMs, seq)).map(String)
}

/** Whether `room` is remembered: its message (1000, 1), handed out before, is dropped. Makes it the most recent. */
const isRemembered = (positions: DeliveredPositions, room: string): boolean =>
  handedOut(positions, room, [[1000, 1]]).length === 0

test('a room never delivered to hands out its first message, whatever its seq', t => {
  const positions = new DeliveredPositions(10)
  t.deepEqual(handedOut(positions, 'a', [[1000, 1]]), ['1000,1'])
  t.deepEqual(handedOut(positions, 'b', [[1000, 0]]), ['1000,0'])
  t.deepEqual(handedOut(positions, 'c', [[0, 57]]), ['0,57'])
})

test('a message at or before the last one handed out of its room is dropped, by storedAtMs, then seq', t => {
  const positions = new DeliveredPositions(10)
  t.deepEqual(handedOut(positions, 'a', [[1000, 5]]), ['1000,5'])
  t.deepEqual(
    handedOut(positions, 'a', [
      [1000, 5], // the same message
      [1000, 4], // an earlier seq, same storedAtMs
      [1000, 5], // again: the dropped one did not move the position back
      [999, 9], // a later seq stored earlier
      [1000, 5],
      [1000, 6], // the next one
      [1000, 6],
      [1001, 2], // stored later, though a lower seq
      [1001, 1],
    ]),
    ['1000,6', '1001,2'],
  )
  t.deepEqual(handedOut(positions, 'b', [[999, 1]]), ['999,1'], "another room's position is its own")
})

test('a room log that expired and restarted at seq 1 is handed out; the old one sent again is dropped', t => {
  const positions = new DeliveredPositions(10)
  t.deepEqual(
    handedOut(positions, 'a', [
      [1000, 41],
      [1001, 42],
    ]),
    ['1000,41', '1001,42'],
  )
  // The room log expired; the room's next message starts it again at 1, stored later.
  t.deepEqual(
    handedOut(positions, 'a', [
      [5000, 1],
      [5000, 2],
    ]),
    ['5000,1', '5000,2'],
  )
  t.deepEqual(
    handedOut(positions, 'a', [[1001, 43]]),
    [],
    'a message of the expired log is before the new one',
  )
  t.deepEqual(handedOut(positions, 'a', [[5000, 3]]), ['5000,3'])
})

test('a run makes its room the most recently delivered, also when all its messages were dropped', t => {
  const positions = new DeliveredPositions(3)
  for (const room of ['a', 'b', 'c']) handedOut(positions, room, [[1000, 1]])
  t.deepEqual(handedOut(positions, 'a', [[1000, 1]]), []) // a again, all dropped: b is now the least recent
  handedOut(positions, 'd', [[1000, 1]]) // a fourth room: b is forgotten
  t.true(isRemembered(positions, 'a'))
  t.true(isRemembered(positions, 'c'))
  t.true(isRemembered(positions, 'd'))
  t.false(isRemembered(positions, 'b'), 'forgotten: its message sent again is handed out again')
})

test('at most maxRooms rooms are remembered: the ones delivered to last', t => {
  const positions = new DeliveredPositions(3)
  const rooms = Array.from({ length: 10 }, (_, i) => `r${i}`)
  for (const room of rooms) handedOut(positions, room, [[1000, 1]])
  // Each check re-delivers: the three remembered first, in their order, so that none forgets another.
  for (const room of rooms.slice(7)) t.true(isRemembered(positions, room), room)
  for (const room of rooms.slice(0, 7)) t.false(isRemembered(positions, room), room)
})

test('maxRooms 1 remembers the one room delivered to last', t => {
  const positions = new DeliveredPositions(1)
  handedOut(positions, 'a', [[1000, 1]])
  t.true(isRemembered(positions, 'a'))
  handedOut(positions, 'b', [[1000, 1]])
  t.true(isRemembered(positions, 'b'))
  t.false(isRemembered(positions, 'a'))
})
