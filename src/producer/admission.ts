/**
 * Places for producer connections that have not authenticated yet. A
 * stranger never authenticates and may hold a connection for the whole auth
 * timeout, so those connections are bounded apart from the authenticated
 * ones: in all (maxUnauthenticatedProducers) and per client address
 * (maxUnauthenticatedProducersPerAddress), so that strangers cannot take the
 * places of producers, nor one address all the strangers' places. A producer
 * authenticates within one round trip, so it holds its place for milliseconds.
 */
import type { Config } from '../config/defaults.js'

export type AdmissionLimits = Pick<
  Config,
  'maxUnauthenticatedProducers' | 'maxUnauthenticatedProducersPerAddress'
>

/** The limit a refused connection met, as its config key (for the log). */
export type FullLimit = 'maxUnauthenticatedProducers' | 'maxUnauthenticatedProducersPerAddress'

export class UnauthenticatedProducers {
  readonly #limits: AdmissionLimits
  readonly #byAddress = new Map<string, number>()
  #total = 0

  constructor(limits: AdmissionLimits) {
    this.#limits = limits
  }

  /** Connections holding a place now. */
  get total(): number {
    return this.#total
  }

  /** Takes a place for a connection from `address`: undefined if it got one, else the limit it met. */
  admit(address: string): FullLimit | undefined {
    if (this.#total >= this.#limits.maxUnauthenticatedProducers) return 'maxUnauthenticatedProducers'
    const fromAddress = this.#byAddress.get(address) ?? 0
    if (fromAddress >= this.#limits.maxUnauthenticatedProducersPerAddress)
      return 'maxUnauthenticatedProducersPerAddress'
    this.#byAddress.set(address, fromAddress + 1)
    this.#total++
    return undefined
  }

  /** Gives a place back: its connection authenticated, was refused, or closed. Once per admit. */
  release(address: string): void {
    const fromAddress = this.#byAddress.get(address) ?? 0
    if (fromAddress <= 1) this.#byAddress.delete(address)
    else this.#byAddress.set(address, fromAddress - 1)
    this.#total--
  }
}
