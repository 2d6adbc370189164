/**
 * An outbox's acknowledged cursors as the commits take them (OutboxCursors),
 * against a node in memory (test/helpers/outbox-host.ts): what the cursor
 * flush takes, keeps and gets back after a failed write, and what the
 * release commits. Against Redis, the same paths run in cursor-flush.test.ts
 * and release.test.ts.
 */
import test from 'ava'
import { twoRoomOutbox } from '../helpers/outbox-host.js'

/** twoRoomOutbox's first batch (a, b) acknowledged: r at 1-2 changed; the next (x) in flight. */
async function ackedOutbox() {
  const { host, outbox } = await twoRoomOutbox()
  outbox.sink!.ack()
  return { host, outbox }
}

test('the flush takes only the rooms it can write; the others stay changed for a later flush', async t => {
  const { outbox } = await ackedOutbox()
  outbox.sink!.ack() // s at 1-1
  const { cursors } = outbox
  t.deepEqual(
    cursors.takeChanged(room => room === 's'),
    ['s', '1-1'],
  )
  t.true(cursors.hasChanged, 'r is still to be taken')
  t.deepEqual(cursors.takeChanged(), ['r', '1-2'])
  t.false(cursors.hasChanged)
})

test('a failed write changes its room again: the next flush takes the cursor as it is by then', async t => {
  const { host, outbox } = await ackedOutbox()
  const { cursors } = outbox
  t.deepEqual(cursors.takeChanged(), ['r', '1-2'])
  t.false(cursors.hasChanged)
  t.true(cursors.notWritten('r'))
  t.true(cursors.hasChanged)
  t.deepEqual(cursors.takeChanged(), ['r', '1-2'], 'taken again')

  outbox.sink!.ack() // s at 1-1
  t.deepEqual(cursors.takeChanged(), ['s', '1-1']) // its write in flight ...
  outbox.offer('s', host.append('s', 'y'))
  outbox.sink!.ack() // ... while s moves on to 1-2
  t.true(cursors.notWritten('s')) // ... and fails
  t.deepEqual(cursors.takeChanged(), ['s', '1-2'], 'once, as acknowledged since, never the older one')
  t.false(cursors.hasChanged)
})

test('a room left is no longer taken, nor changed again by a failed write', async t => {
  const { outbox } = await ackedOutbox()
  const { cursors } = outbox
  outbox.removeRoom('r')
  t.false(cursors.hasChanged, 'its acknowledgement is dropped with the room')
  t.deepEqual(cursors.takeChanged(), [])
  t.false(cursors.notWritten('r'))
  t.false(cursors.hasChanged)
  t.is(cursors.acked('r'), undefined)
  t.deepEqual(cursors.all(), ['s', '0-0'])
})

test('a closed outbox: a failed write changes nothing, as its release commits every cursor', async t => {
  const { outbox } = await ackedOutbox()
  const { cursors } = outbox
  t.deepEqual(cursors.takeChanged(), ['r', '1-2'])
  outbox.close()
  t.false(cursors.notWritten('r'))
  t.false(cursors.hasChanged)
  t.deepEqual(cursors.takeAll(), ['r', '1-2', 's', '0-0'])
})

test('every cursor for a commit: all() leaves the changed rooms to the flush, takeAll() (the release) takes them', async t => {
  const { outbox } = await ackedOutbox()
  const { cursors } = outbox
  t.deepEqual(cursors.all(), ['r', '1-2', 's', '0-0'])
  t.true(cursors.hasChanged, 'all() takes nothing')
  t.deepEqual(cursors.takeAll(), ['r', '1-2', 's', '0-0'])
  t.false(cursors.hasChanged, 'nothing left to flush after the release')
  t.like(cursors.acked('r'), { ms: 1, seq: 2 })
})
