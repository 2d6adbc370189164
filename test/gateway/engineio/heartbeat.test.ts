import test from 'ava'
import { type Heartbeat, type HeartbeatOwner, Heartbeats } from '../../../src/gateway/engineio/heartbeat.js'
import { eventually, pause } from '../../helpers/eventually.js'

/** A session as the heartbeat sees it: records when it was told to ping and when it timed out. */
class Recorder implements HeartbeatOwner {
  readonly pings: number[] = []
  readonly timeouts: number[] = []
  heartbeat!: Heartbeat
  /** Answers each ping with a pong, as a live client does. */
  answers = true

  pingDue(): void {
    this.pings.push(performance.now())
    if (this.answers) setImmediate(() => this.heartbeat.pong())
  }

  pingTimedOut(): void {
    this.timeouts.push(performance.now())
  }
}

/** A v4 session of the engine whose heartbeats these are. */
function start(heartbeats: Heartbeats, answers: boolean): Recorder {
  const recorder = new Recorder()
  recorder.answers = answers
  recorder.heartbeat = heartbeats.start(4, recorder)
  return recorder
}

// Real timers, short intervals: the assertions are counts and order, with bounds only from below
// (a timer is never early by a whole millisecond), so a loaded machine makes them slower, not wrong.

test('v4: sessions that answer are pinged again and again; one that stops answering times out once, pingTimeout after its ping, and is called no more', async t => {
  const times = { pingIntervalMs: 30, pingTimeoutMs: 40 }
  const heartbeats = new Heartbeats(times)
  const live = [start(heartbeats, true), start(heartbeats, true)]
  const silent = start(heartbeats, false)
  await eventually(() => live.every(session => session.pings.length >= 4) && silent.timeouts.length > 0, {
    what: 'four pings each, and the silent one timed out',
  })
  await pause(3 * times.pingIntervalMs)
  t.is(silent.pings.length, 1)
  t.is(silent.timeouts.length, 1)
  t.true(silent.timeouts[0]! - silent.pings[0]! >= times.pingTimeoutMs - 1)
  for (const session of live) {
    t.is(session.timeouts.length, 0)
    const gaps = session.pings.slice(1).map((at, i) => at - session.pings[i]!)
    t.true(
      gaps.every(gap => gap >= times.pingIntervalMs - 1),
      `pings ${times.pingIntervalMs} ms apart at least: ${gaps.map(Math.round).join(', ')}`,
    )
    session.heartbeat.stop()
  }
})

test('v4: sessions that began at different times each wait their own whole interval, whichever leaves the shared wait first', async t => {
  const times = { pingIntervalMs: 300, pingTimeoutMs: 60 }
  const heartbeats = new Heartbeats(times)
  const began: number[] = []
  const sessions: Recorder[] = []
  for (let i = 0; i < 3; i++) {
    began.push(performance.now())
    sessions.push(start(heartbeats, false))
    await pause(15)
  }
  // The first (the head of both waits) is stopped before its ping: the others' timer must not go with it.
  sessions[0]!.heartbeat.stop()
  await eventually(() => sessions[1]!.timeouts.length > 0 && sessions[2]!.timeouts.length > 0, {
    what: 'the two left timed out',
  })
  t.deepEqual(sessions[0]!.pings, [])
  for (const i of [1, 2]) {
    const session = sessions[i]!
    t.is(session.pings.length, 1)
    t.true(
      session.pings[0]! - began[i]! >= times.pingIntervalMs - 1,
      `session ${i} pinged a whole interval after it began`,
    )
    t.true(session.timeouts[0]! - session.pings[0]! >= times.pingTimeoutMs - 1)
  }
  t.true(sessions[1]!.pings[0]! <= sessions[2]!.pings[0]!, 'pinged in the order they began')
})

test('v4: a stopped session is never called again, however it was waiting, even when its pong comes after the stop', async t => {
  const times = { pingIntervalMs: 40, pingTimeoutMs: 200 }
  const heartbeats = new Heartbeats(times)
  const answering = start(heartbeats, true)
  const stoppedAwaitingPong = start(heartbeats, false)
  // Stopped at its second ping, with that ping's pong still to come (the session ended, a last packet read).
  const pongAfterStop = start(heartbeats, true)
  const pingDue = pongAfterStop.pingDue.bind(pongAfterStop)
  pongAfterStop.pingDue = () => {
    pingDue()
    if (pongAfterStop.pings.length === 2) pongAfterStop.heartbeat.stop()
  }
  await eventually(
    () =>
      answering.pings.length >= 2 &&
      stoppedAwaitingPong.pings.length === 1 &&
      pongAfterStop.pings.length === 2,
    { what: 'two pings, one unanswered, and a stop before a pong' },
  )
  stoppedAwaitingPong.heartbeat.stop()
  await pause(times.pingIntervalMs + times.pingTimeoutMs + 50)
  t.true(answering.pings.length >= 3, 'the one left running goes on')
  answering.heartbeat.stop()
  await pause(0) // its last pong, if one was on its way
  const pings = answering.pings.length
  await pause(times.pingIntervalMs + times.pingTimeoutMs + 50)
  t.is(answering.pings.length, pings)
  t.deepEqual(answering.timeouts, [])
  t.is(stoppedAwaitingPong.pings.length, 1)
  t.deepEqual(stoppedAwaitingPong.timeouts, [])
  t.is(pongAfterStop.pings.length, 2)
  t.deepEqual(pongAfterStop.timeouts, [])
})
