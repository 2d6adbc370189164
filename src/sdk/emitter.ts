import { SDK_ERRORS, SnapperError } from './errors.js'

/** A listener of one event, typed by the event's argument list. */
export type Listener<Args extends readonly unknown[]> = (...args: Args) => void

/**
 * A small typed event emitter that runs in browsers and in Node. A listener
 * that throws does not stop the emitter's work (a delivery is still
 * acknowledged): its exception is handed to the `error` listeners as a
 * SnapperError (LISTENER, the exception as its cause), or, when there are
 * none, thrown as it is on its own later so that it is not lost.
 */
export class Emitter<Events extends { [Name in keyof Events]: readonly unknown[] }> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>()

  on<Name extends keyof Events>(event: Name, listener: Listener<Events[Name]>): this {
    let set = this.#listeners.get(event)
    if (!set) this.#listeners.set(event, (set = new Set()))
    set.add(listener as Listener<never>)
    return this
  }

  off<Name extends keyof Events>(event: Name, listener: Listener<Events[Name]>): this {
    this.#listeners.get(event)?.delete(listener as Listener<never>)
    return this
  }

  protected emit<Name extends keyof Events>(event: Name, ...args: Events[Name]): void {
    const set = this.#listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        ;(listener as Listener<Events[Name]>)(...args)
      } catch (err) {
        const errorListeners = this.#listeners.get('error' as keyof Events)
        if (event !== 'error' && errorListeners && errorListeners.size > 0)
          this.emit('error' as Name, ...([listenerError(event, err)] as unknown as Events[Name]))
        else
          setTimeout(() => {
            throw err
          })
      }
    }
  }
}

function listenerError(event: PropertyKey, thrown: unknown): SnapperError {
  const what = thrown instanceof Error ? thrown.message : String(thrown)
  return new SnapperError(
    SDK_ERRORS.LISTENER,
    `a ${String(event)} listener threw: ${what}`,
    {},
    { cause: thrown },
  )
}
