/**
 * Places for producer connections that have not authenticated yet. A
 * stranger never authenticates and may hold a connection for the whole auth
 * timeout, so those connections are bounded apart from the authenticated
 * ones: in all (maxUnauthenticatedProducers) and per client address
 * (maxUnauthenticatedProducersPerAddress; an IPv6 one by its network:
 * src/client-address.ts), so that strangers cannot take the
 * places of producers, nor one address all the strangers' places. A producer
 * authenticates within one round trip, so it holds its place for milliseconds.
 */
import { PerAddress } from '../client-address.js'
import type { Config } from '../config/defaults.js'

export type AdmissionLimits = Pick<
  Config,
  'maxUnauthenticatedProducers' | 'maxUnauthenticatedProducersPerAddress' | 'perAddressIpv6PrefixBits'
>

/** The limit a refused connection met, as its config key (for the log). */
export type FullLimit = 'maxUnauthenticatedProducers' | 'maxUnauthenticatedProducersPerAddress'

export class UnauthenticatedProducers {
  readonly #limits: AdmissionLimits
  readonly #perAddress: PerAddress
  #total = 0

  constructor(limits: AdmissionLimits) {
    this.#limits = limits
    this.#perAddress = new PerAddress(
      limits.maxUnauthenticatedProducersPerAddress,
      limits.perAddressIpv6PrefixBits,
    )
  }

  /** Connections holding a place now. */
  get total(): number {
    return this.#total
  }

  /** Addresses (groups) holding a place now (a leak check's reading). */
  get addresses(): number {
    return this.#perAddress.size
  }

  /**
   * Takes a place for a connection from `address`: the group it counts under
   * (to give back with release()), else the limit it met.
   */
  admit(address: string): { readonly group: string } | { readonly full: FullLimit } {
    if (this.#total >= this.#limits.maxUnauthenticatedProducers)
      return { full: 'maxUnauthenticatedProducers' }
    const group = this.#perAddress.take(address)
    if (group === undefined) return { full: 'maxUnauthenticatedProducersPerAddress' }
    this.#total++
    return { group }
  }

  /** Gives a place back: its connection authenticated, was refused, or closed. Once per admit. */
  release(group: string): void {
    this.#perAddress.give(group)
    this.#total--
  }
}
