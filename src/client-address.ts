/**
 * Client addresses as the per-address limits count them
 * (maxHandshakesPerAddressPerSec, maxUnauthenticatedProducersPerAddress,
 * adminMaxConnectionsPerAddress): one spelling per address, and an IPv6 client
 * by its network, not its address. A site is given a whole IPv6 prefix (a /64
 * at least, often a /56 or a /48) and may use any address in it, so a limit on
 * exact IPv6 addresses bounds nothing: one host can take a new address for
 * each connection (README, Limits and bad input).
 */
import { isIP, SocketAddress } from 'node:net'

/** An address in one spelling: IPv6 shortened, IPv4-mapped IPv6 as plain IPv4 (uWS spells out all 8 groups). */
export function canonicalAddress(address: string): string {
  const family = isIP(address)
  if (family !== 6) return address
  const short = new SocketAddress({ address, family: 'ipv6' }).address
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(short)
  return mapped ? mapped[1]! : short
}

/**
 * What a per-address limit counts `address` under: an IPv4 address (or an
 * IPv4-mapped IPv6 one) as itself, an IPv6 address as its first
 * `ipv6PrefixBits` bits (`2001:db8:1:2::/64`); anything else as it is.
 */
export function addressGroup(address: string, ipv6PrefixBits: number): string {
  const canonical = canonicalAddress(address)
  if (isIP(canonical) !== 6 || ipv6PrefixBits >= 128) return canonical
  const groups = ipv6Groups(canonical)
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, ipv6PrefixBits - i * 16)) // bits of group i inside the prefix
    groups[i] = keep === 0 ? 0 : groups[i]! & (0xffff << (16 - keep)) & 0xffff
  }
  const network = new SocketAddress({
    address: groups.map(group => group.toString(16)).join(':'),
    family: 'ipv6',
  })
  return `${network.address}/${ipv6PrefixBits}`
}

/** The eight 16-bit groups of a valid IPv6 address (a zone, `%eth0`, dropped; an IPv4 tail as two groups). */
function ipv6Groups(address: string): number[] {
  let text = address.replace(/%.*$/, '')
  const ipv4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (ipv4) {
    const [a, b, c, d] = ipv4.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, ipv4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0')
  return [...left, ...zeros, ...right].map(group => parseInt(group, 16))
}

/** Connections held per client address (counted by addressGroup), each address at most `max`. */
export class PerAddress {
  readonly #counts = new Map<string, number>()

  constructor(
    readonly max: number,
    readonly ipv6PrefixBits: number,
  ) {}

  /** Addresses (groups) holding a connection now (a leak check's reading). */
  get size(): number {
    return this.#counts.size
  }

  /** Counts one more for `address`: the group it counts under, or undefined if that holds max already. */
  take(address: string): string | undefined {
    const group = addressGroup(address, this.ipv6PrefixBits)
    const count = this.#counts.get(group) ?? 0
    if (count >= this.max) return undefined
    this.#counts.set(group, count + 1)
    return group
  }

  /** Gives back one that take() counted under `group`. */
  give(group: string): void {
    const left = (this.#counts.get(group) ?? 1) - 1
    if (left <= 0) this.#counts.delete(group)
    else this.#counts.set(group, left)
  }
}
