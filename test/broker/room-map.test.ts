import test from 'ava'
import fc from 'fast-check'
import { RoomMap } from '../../src/broker/room-map.js'

/** What a RoomMap and a Map both answer, in the order they give it. */
function reading(map: RoomMap<number> | Map<string, number>, rooms: readonly string[]): unknown {
  return {
    size: map.size,
    keys: [...map.keys()],
    entries: [...map],
    got: rooms.map(room => [map.get(room), map.has(room)]),
  }
}

const ROOMS = ['', 'a', 'b', 'c']
const step = fc.oneof(
  fc.record({ set: fc.constantFrom(...ROOMS), value: fc.integer() }),
  fc.record({ delete: fc.constantFrom(...ROOMS) }),
)

test('a RoomMap answers as a Map would after any sequence of sets and deletes, at each step', t => {
  fc.assert(
    fc.property(fc.array(step, { maxLength: 12 }), steps => {
      const rooms = new RoomMap<number>()
      const map = new Map<string, number>()
      for (const change of steps) {
        if ('set' in change) {
          rooms.set(change.set, change.value)
          map.set(change.set, change.value)
        } else if (rooms.delete(change.delete) !== map.delete(change.delete)) return false
        if (JSON.stringify(reading(rooms, ROOMS)) !== JSON.stringify(reading(map, ROOMS))) return false
      }
      return true
    }),
  )
  t.pass()
})

test('one room, replaced, deleted, then two: each read as a Map gives it', t => {
  const rooms = new RoomMap<number>()
  t.deepEqual([rooms.size, [...rooms], rooms.get('a'), rooms.has('a')], [0, [], undefined, false])
  rooms.set('a', 1)
  rooms.set('a', 2)
  t.deepEqual([rooms.size, [...rooms], rooms.get('a'), rooms.get('b')], [1, [['a', 2]], 2, undefined])
  t.false(rooms.delete('b'))
  t.true(rooms.delete('a'))
  t.false(rooms.delete('a'))
  rooms.set('b', 3)
  rooms.set('a', 4)
  t.deepEqual([...rooms.keys()], ['b', 'a'], 'in insertion order')
  t.deepEqual([rooms.get('a'), rooms.get('b'), rooms.size], [4, 3, 2])
})
