/** Redis Cluster's 16384 hash slots. */
export const SLOT_COUNT = 16384

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster takes modulo 16384; one table per process. */
const TABLE = new Uint16Array(256)
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1
  TABLE[byte] = crc & 0xffff
}

/**
 * The hash slot of a key or sharded channel, as Redis Cluster computes it: if
 * the key holds `{tag}` with a non-empty tag (the first `{` and the first `}`
 * after it), only the tag is hashed, so keys with one tag share a slot. Keys
 * are hashed as their UTF-8 bytes.
 */
export function slotOf(key: string): number {
  const bytes = Buffer.from(key)
  let start = 0
  let end = bytes.length
  const open = bytes.indexOf(0x7b) // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1) // }
    if (close > open + 1) {
      start = open + 1
      end = close
    }
  }
  let crc = 0
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!
  return crc % SLOT_COUNT
}

/**
 * Items grouped by the slot of their key, for a script that takes the keys of
 * many: on a Redis Cluster a script's keys must share one slot; one Redis
 * takes keys of any slots, so there everything is one group.
 */
export function groupBySlot<T>(items: Iterable<T>, keyOf: (item: T) => string, isCluster: boolean): T[][] {
  if (!isCluster) return [[...items]]
  const groups = new Map<number, T[]>()
  for (const item of items) {
    const slot = slotOf(keyOf(item))
    const group = groups.get(slot)
    if (group) group.push(item)
    else groups.set(slot, [item])
  }
  return [...groups.values()]
}
