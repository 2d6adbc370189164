/**
 * What the consumer handed out, so that what the broker sends again reaches
 * the application once: per room, the last message handed out, as its
 * (storedAtMs, seq). A message at or before it is dropped (a batch sent again
 * after a reconnect or a node crash); one after it is handed out and becomes
 * the room's position.
 *
 * Only the maxRoomsRemembered rooms delivered to most recently are
 * remembered: what the broker sends again is recent (README "The SDK"), and a
 * consumer living for weeks must not keep every room it ever heard of.
 *
 * Its own module: the exactly-once bookkeeping has no part in the connection
 * life (consumer.ts), and its rules are tested without a broker.
 */

/** Where the consumer stands in one room: the last message handed out. */
export class RoomPosition {
  // Nothing handed out yet: every message is after it.
  #storedAtMs = Number.NEGATIVE_INFINITY
  #seq = 0

  /**
   * Moves the position to the message (storedAtMs, seq) and says true when
   * it is after the position (to hand out); false, unmoved, when it is at or
   * before it (handed out already). (storedAtMs, seq) orders a room's
   * messages, also across a room log that expired and restarted at seq 1.
   */
  advanceTo(storedAtMs: number, seq: number): boolean {
    if (storedAtMs < this.#storedAtMs || (storedAtMs === this.#storedAtMs && seq <= this.#seq)) return false
    this.#storedAtMs = storedAtMs
    this.#seq = seq
    return true
  }
}

export class DeliveredPositions {
  readonly #maxRooms: number
  /** By room, least recently delivered first (positionOf re-inserts a room), at most #maxRooms. */
  readonly #positions = new Map<string, RoomPosition>()

  /** `maxRooms`: how many rooms are remembered, a whole number above 0 (the consumer's maxRoomsRemembered). */
  constructor(maxRooms: number) {
    this.#maxRooms = maxRooms
  }

  /**
   * `room`'s position, made the most recently delivered; the least recently
   * delivered room is forgotten past maxRooms. Once per delivered run, not
   * per message: a Map keeps insertion order, so deleting and setting again
   * moves a room last.
   */
  positionOf(room: string): RoomPosition {
    const positions = this.#positions
    let position = positions.get(room)
    if (position) positions.delete(room)
    else position = new RoomPosition()
    positions.set(room, position)
    if (positions.size > this.#maxRooms) positions.delete(positions.keys().next().value!)
    return position
  }
}
