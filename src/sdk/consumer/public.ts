/** The public types of `snapper/consumer`, the same in browsers and in Node. */
export type {
  ConsumerEvents,
  ConsumerOptions,
  ConsumerState,
  Gap,
  MessageMeta,
  StateDetails,
} from './consumer.js'
export type { Codec } from './codec.js'
export type { TransportName } from './link.js'
export type { Listener } from '../emitter.js'
export { SDK_ERRORS, SnapperError } from '../errors.js'
