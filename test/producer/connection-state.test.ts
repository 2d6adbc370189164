/**
 * The producer connection's transition table on its own: the properties the
 * connection relies on, checked over every path the table allows.
 */
import { readFileSync } from 'node:fs'
import test from 'ava'
import {
  nextState,
  READS_SOCKET,
  SERVES_FRAMES,
  TRANSITIONS,
  type ConnectionEvent,
  type ConnectionState,
} from '../../src/producer/connection-state.js'

const states = Object.keys(TRANSITIONS) as ConnectionState[]
const edges = states.flatMap(from =>
  Object.entries(TRANSITIONS[from]).map(([event, to]) => ({
    from,
    event: event as ConnectionEvent,
    to: to!,
  })),
)

/** States reachable from `start` through edges that pass `allowed`. */
function reachable(
  start: ConnectionState,
  allowed: (edge: (typeof edges)[number]) => boolean,
): Set<ConnectionState> {
  const seen = new Set([start])
  for (const state of seen)
    for (const edge of edges) if (edge.from === state && allowed(edge)) seen.add(edge.to)
  return seen
}

test('a closed socket ends every state, and ended is final', t => {
  for (const state of states) if (state !== 'ended') t.is(nextState(state, 'socketClosed'), 'ended', state)
  t.deepEqual(TRANSITIONS.ended, {})
})

test('every state before closing can still reach our FIN (no dead end short of a closed socket)', t => {
  for (const state of states)
    if (state !== 'closing' && state !== 'ended')
      t.true(reachable(state, edge => edge.event !== 'socketClosed').has('closing'), state)
})

test('without a verified token, no frame is served beyond the auth frame', t => {
  const unauthenticated = reachable('authenticating', edge => edge.event !== 'authenticated')
  const serving = [...unauthenticated].filter(state => SERVES_FRAMES.has(state))
  t.deepEqual(serving, ['authenticating'])
})

test('our FIN (closing) comes only after everything is answered', t => {
  const intoClosing = edges.filter(edge => edge.to === 'closing')
  t.deepEqual(intoClosing, [{ from: 'answering', event: 'allAnswered', to: 'closing' }])
})

test('a state that reads the socket also serves what it reads', t => {
  for (const state of READS_SOCKET) t.true(SERVES_FRAMES.has(state), state)
})

test('an event the table does not list changes nothing', t => {
  t.is(nextState('draining', 'drainRequested'), undefined)
  t.is(nextState('closing', 'clientEnded'), undefined)
  t.is(nextState('open', 'inputExhausted'), undefined)
})

test('the header diagram names every state and event of the table', t => {
  const source = readFileSync(new URL('../../../src/producer/connection-state.ts', import.meta.url), 'utf8')
  const diagram = source.slice(0, source.indexOf('*/'))
  for (const { from, event, to } of edges) {
    t.true(diagram.includes(from), from)
    t.true(diagram.includes(to), to)
    t.true(diagram.includes(event), event)
  }
})
