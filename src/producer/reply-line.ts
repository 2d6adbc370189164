/**
 * Replies in request order. A request takes its place in line when its work
 * starts; its reply fills that place whenever the work is done, in any
 * order; replies leave strictly in line order, and all those that left in
 * one tick go out as one write.
 *
 *   reserve ─▶ [ slot │ slot │ slot ] ─▶ fill: filled slots at the head leave ─▶ ready ─▶ next tick: send(joined)
 */

/** A reply's place in line; `text` is set when its work is done. */
export interface ReplySlot {
  text: string | undefined
}

export class ReplyLine {
  readonly #send: (text: string) => void
  readonly #slots: ReplySlot[] = []
  #ready: string[] = []
  #isFlushScheduled = false

  /** @param send receives every reply that left the line in one tick, joined. */
  constructor(send: (text: string) => void) {
    this.#send = send
  }

  /** Slots in line: replies not sent on yet. */
  get length(): number {
    return this.#slots.length
  }

  /** Replies out of line, waiting for this tick's write, in UTF-16 units (bytes for ASCII). */
  get readyLength(): number {
    let length = 0
    for (const text of this.#ready) length += text.length
    return length
  }

  reserve(): ReplySlot {
    const slot: ReplySlot = { text: undefined }
    this.#slots.push(slot)
    return slot
  }

  /** Fills a slot; returns how many slots left the line (0 while an earlier one is still empty). */
  fill(slot: ReplySlot, text: string): number {
    slot.text = text
    let done = 0
    while (done < this.#slots.length && this.#slots[done]!.text !== undefined) {
      this.#ready.push(this.#slots[done]!.text!)
      done++
    }
    if (done === 0) return 0
    this.#slots.splice(0, done)
    if (!this.#isFlushScheduled) {
      this.#isFlushScheduled = true
      process.nextTick(this.#flushTick)
    }
    return done
  }

  /** Sends what is ready now, as one text, instead of at the end of the tick. */
  flush(): void {
    if (this.#ready.length === 0) return
    const text = this.#ready.length === 1 ? this.#ready[0]! : this.#ready.join('')
    this.#ready = []
    this.#send(text)
  }

  /** Forgets every slot and ready reply (the socket is gone). */
  clear(): void {
    this.#slots.length = 0
    this.#ready = []
  }

  #flushTick = (): void => {
    this.#isFlushScheduled = false
    this.flush()
  }
}
