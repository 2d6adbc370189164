import type { Cluster } from 'ioredis'

/**
 * What an auto-pipeline hands back instead of following it: a reply by which
 * Redis says the command did not run and where it should go (a slot moved,
 * or is moving: MOVED, ASK, TRYAGAIN), or ioredis' refusal to send a
 * pipeline whose slots a new slot map puts on several servers (sent nothing).
 */
const REDIRECTED =
  /^(MOVED|ASK|TRYAGAIN) |^All keys in the pipeline should belong to the same slots allocation group/

/** Whether a command failed with a redirect (it did not run: sending it again stores nothing twice). */
export function isRedirect(err: unknown): boolean {
  return err instanceof Error && REDIRECTED.test(err.message)
}

/** Whether a command failed with MOVED: the slot is served elsewhere now, and the sender's slot map is out of date. */
export function isMoved(err: Error): boolean {
  return /^MOVED /.test(err.message)
}

/** Methods never wrapped: not auto-pipelined (sendCommand follows redirects itself), or not commands. */
const UNWRAPPED = new Set(['sendCommand', 'connect', 'quit', 'disconnect', 'pipeline', 'multi', 'on', 'once'])

/**
 * The cluster's commands, each sent once more, on its own, when its
 * auto-pipeline hands back a redirect. ioredis follows MOVED, ASK and
 * TRYAGAIN for a command sent alone, and for a pipeline only when all its
 * commands got the same one and the others only read: while a reshard moves
 * slots (README, Redis Cluster) the auto-pipeline of a tick to one server
 * mixes moved and unmoved keys, and every redirected command of it failed
 * (a join answered STORE_UNAVAILABLE, reads retried against the old master
 * until the next slot map). Such a command did not run, so sending it again
 * stores nothing twice; sent alone (auto-pipelining off for that one call)
 * it gets ioredis' own redirects, retries and slot map updates.
 */
export function followRedirects<T extends Cluster>(cluster: T): T {
  const wrapped = new Map<PropertyKey, (...args: unknown[]) => unknown>()
  return new Proxy(cluster, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver)
      if (typeof value !== 'function' || UNWRAPPED.has(property as string)) return value
      let wrapper = wrapped.get(property)
      if (!wrapper) {
        const method = value as (...args: unknown[]) => unknown
        wrapper = (...args: unknown[]): unknown => {
          const result = method.apply(target, args)
          if (!(result instanceof Promise)) return result
          return result.catch((err: unknown) => {
            if (!isRedirect(err)) throw err
            return sendAlone(target, () => method.apply(target, args))
          })
        }
        wrapped.set(property, wrapper)
      }
      return wrapper
    },
  })
}

/** Issues a command with auto-pipelining off: ioredis decides that as the call is made. */
function sendAlone(cluster: Cluster, issue: () => unknown): unknown {
  const options = cluster.options as { enableAutoPipelining?: boolean }
  const before = options.enableAutoPipelining
  options.enableAutoPipelining = false
  try {
    return issue()
  } finally {
    options.enableAutoPipelining = before
  }
}
