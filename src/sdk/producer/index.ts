/**
 * `snapper/producer`: the typed producer client for Node. See the README's
 * quick start and docs/producer-protocol.md for the wire it speaks.
 */
export { Producer } from './producer.js'
export type * from './types.js'
export { SDK_ERRORS, SnapperError } from '../errors.js'
export type { Listener } from '../emitter.js'
