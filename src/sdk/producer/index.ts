/**
 * `snapper/producer`: the typed producer client for Node. See the README's
 * quick start and docs/producer-protocol.md for the wire it speaks.
 */
export {
  Producer,
  type ConsumerCounts,
  type ConsumerTokenClaims,
  type ProducerEvents,
  type ProducerOptions,
  type ProducerState,
  type Publication,
  type Receipt,
  type ReceiptAck,
  type TrackOptions,
  type Tracked,
} from './producer.js'
export { SDK_ERRORS, SnapperError } from '../errors.js'
export type { Listener } from '../emitter.js'
