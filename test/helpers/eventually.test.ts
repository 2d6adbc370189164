/**
 * The waits of the tests fail with a message that names what they waited
 * for, in their own time, instead of hanging until ava's timeout.
 */
import { EventEmitter } from 'node:events'
import test from 'ava'
import { eventually, eventWithin } from './eventually.js'

test('eventWithin: the event’s arguments; its emitter’s error; else, in time, an error naming the event', async t => {
  const emitter = new EventEmitter()
  setImmediate(() => emitter.emit('ready', 1, 'two'))
  t.deepEqual(await eventWithin(emitter, 'ready'), [1, 'two'])

  setImmediate(() => emitter.emit('error', new Error('broken')))
  await t.throwsAsync(eventWithin(emitter, 'ready'), { message: 'broken' })

  const started = Date.now()
  await t.throwsAsync(eventWithin(emitter, 'never', 50), {
    message: "timed out after 50 ms waiting for the event 'never'",
  })
  t.true(Date.now() - started < 1000)
})

test('eventually: the first answer that is not false, undefined or null; else an error naming what', async t => {
  let calls = 0
  t.is(await eventually(() => ++calls >= 3 && 'done'), 'done')
  await t.throwsAsync(
    eventually(() => false, { what: 'pigs to fly', timeoutMs: 30 }),
    {
      message: 'timed out after 30 ms waiting for pigs to fly',
    },
  )
})
