/**
 * Who a handshake comes from (its rate per address: src/rate.ts). The TCP
 * peer is the client, unless it is one of the configured trusted proxies
 * (nginx): then the proxy's X-Forwarded-For (or X-Real-IP) names the client.
 * From anyone else those headers are ignored, since a client can write
 * whatever it likes in them.
 */
import { BlockList, isIP } from 'node:net'
import { canonicalAddress } from '../../client-address.js'

export class TrustedProxies {
  readonly #list = new BlockList()
  readonly #isEmpty: boolean

  /** @param ranges addresses or CIDR ranges, as the config validated them */
  constructor(ranges: readonly string[]) {
    this.#isEmpty = ranges.length === 0
    for (const range of ranges) {
      const [address = '', prefix] = range.split('/')
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4'
      if (prefix === undefined) this.#list.addAddress(address, family)
      else this.#list.addSubnet(address, Number(prefix), family)
    }
  }

  #isTrusted(address: string): boolean {
    const family = isIP(address)
    return family !== 0 && this.#list.check(address, family === 6 ? 'ipv6' : 'ipv4')
  }

  /**
   * The client's address: walking X-Forwarded-For from its right end (the
   * hop our peer added), each trusted proxy hands over to the address it
   * names, until an untrusted one, which is the client. Without that header,
   * a trusted peer's X-Real-IP. A malformed entry stops the walk at the last
   * trusted hop.
   */
  clientAddress(peer: string, forwardedFor: string, realIp: string): string {
    let address = canonicalAddress(peer)
    if (this.#isEmpty || !this.#isTrusted(address)) return address
    if (forwardedFor === '') return isIP(realIp.trim()) ? canonicalAddress(realIp.trim()) : address
    const hops = forwardedFor.split(',')
    for (let i = hops.length - 1; i >= 0 && this.#isTrusted(address); i--) {
      const hop = hops[i]!.trim()
      if (!isIP(hop)) break
      address = canonicalAddress(hop)
    }
    return address
  }
}
