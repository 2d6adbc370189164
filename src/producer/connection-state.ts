/**
 * The life of a producer connection as a transition table: its states, the
 * events that move it, and which states read and serve. An event the table
 * does not list for the current state changes nothing (a drain asked twice,
 * a client FIN after ours, input exhausted while more may still come).
 *
 *                     authenticated
 *   authenticating ─────────────────▶ open ──drainRequested──▶ awaiting-pause
 *     │ (auth timer)                    │                        │ (quiet and budget timers)
 *     │                                 │ clientEnded            │ clientPaused, drainWaitOver, clientEnded
 *     │                                 ▼                        │
 *     │                              draining ◀──────────────────┘
 *     │ inputRefused,                   │ inputExhausted
 *     │ clientEnded                     ▼
 *     └────────────────────────────▶ answering ──allAnswered──▶ closing ──socketClosed──▶ ended
 *                                       ▲                       (grace timer)
 *       inputRefused from open, awaiting-pause and draining (a framing error)
 *       socketClosed from every state ──▶ ended
 *
 * - authenticating: the first frame must be an `auth` request carrying a valid token.
 * - open: frames are served as they are read.
 * - awaiting-pause: a drain was asked; reading and serving go on until the
 *   client pauses, because our FIN races with its writes.
 * - draining: the socket is no longer read; frames already received are served.
 * - answering: no frame is served any more; the work in flight is answered.
 * - closing: our FIN is sent. What the client wrote before it saw the FIN
 *   still arrives; its `publish` notifications are stored (a graceful close
 *   loses none), requests are not (they can no longer be answered).
 * - ended: the socket is closed.
 *
 * Pure: imports nothing, so the table can be checked alone.
 */

export type ConnectionState =
  'authenticating' | 'open' | 'awaiting-pause' | 'draining' | 'answering' | 'closing' | 'ended'

export type ConnectionEvent =
  /** The auth frame's token verified. */
  | 'authenticated'
  /**
   * Nothing more is taken from this client: auth refused or timed out, a
   * shutdown before auth, or a framing error. What is queued is answered.
   */
  | 'inputRefused'
  /** Graceful close asked by the listener, the client authenticated. */
  | 'drainRequested'
  /** The client has been silent for a while: a FIN now races with nothing. */
  | 'clientPaused'
  /** The client never paused: the drain stops waiting (half of its budget). */
  | 'drainWaitOver'
  /** The client's FIN: what it sent before is still served and answered. */
  | 'clientEnded'
  /** Every frame received has been served. */
  | 'inputExhausted'
  /** No request or publish is in flight any more. */
  | 'allAnswered'
  | 'socketClosed'

export const TRANSITIONS: {
  readonly [S in ConnectionState]: Readonly<Partial<Record<ConnectionEvent, ConnectionState>>>
} = {
  authenticating: {
    authenticated: 'open',
    inputRefused: 'answering',
    // Auth is checked as soon as its frame is read, so only a partial frame can be left: it never completes.
    clientEnded: 'answering',
    socketClosed: 'ended',
  },
  open: {
    drainRequested: 'awaiting-pause',
    clientEnded: 'draining',
    inputRefused: 'answering',
    socketClosed: 'ended',
  },
  'awaiting-pause': {
    clientPaused: 'draining',
    drainWaitOver: 'draining',
    clientEnded: 'draining',
    inputRefused: 'answering',
    socketClosed: 'ended',
  },
  draining: { inputExhausted: 'answering', inputRefused: 'answering', socketClosed: 'ended' },
  answering: { allAnswered: 'closing', socketClosed: 'ended' },
  closing: { socketClosed: 'ended' },
  ended: {},
}

/** The state an event leads to, or undefined when the event changes nothing in `state`. */
export function nextState(state: ConnectionState, event: ConnectionEvent): ConnectionState | undefined {
  return TRANSITIONS[state][event]
}

/** States that take frames from the decoder and serve them. */
export const SERVES_FRAMES: ReadonlySet<ConnectionState> = new Set<ConnectionState>([
  'authenticating',
  'open',
  'awaiting-pause',
  'draining',
])

/**
 * States that read the socket as they serve, so backpressure pauses and
 * resumes it (closing reads too, only for late publishes, and never pauses).
 */
export const READS_SOCKET: ReadonlySet<ConnectionState> = new Set<ConnectionState>([
  'authenticating',
  'open',
  'awaiting-pause',
])
