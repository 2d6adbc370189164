import { at } from './clock.js'
import type { ChaosConsumer } from './consumers.js'
import type { Timeline } from './timeline.js'

/** Violations print as found (the first 30), each with the fault timeline and the consumer's around it. */
export class Violations {
  readonly list: string[] = []
  readonly #timeline: Timeline

  constructor(timeline: Timeline) {
    this.#timeline = timeline
  }

  /** `around`: the times (ms) the violation spans; the timeline is printed from 4 s before to 2 s after. */
  add(text: string, around: number[], consumer?: ChaosConsumer): void {
    this.list.push(text)
    if (this.list.length > 30) return
    console.log(`VIOLATION ${text}`)
    if (around.length === 0) return
    const from = Math.min(...around) - 4000
    const to = Math.max(...around) + 2000
    for (const event of this.#timeline.events)
      if (event.at >= from && event.at <= to) console.log(`    ${at(event.at)} ${event.text}`)
    if (consumer)
      for (const event of consumer.events)
        if (event.at >= from && event.at <= to)
          console.log(`    ${at(event.at)} [${consumer.name}] ${event.text}`)
  }
}

export interface Summary {
  readonly seed: number
  readonly seconds: number
  readonly cluster: boolean
  readonly counts: Record<string, number>
  readonly deliveriesChecked: number
  readonly received: number
  readonly opens: number
  readonly duplicatesAfterCrash: number
  readonly violations: number
}

/** The first 10 duplicates README "After a node crash" allows, then the summary as one JSON line. */
export function printReport(documented: readonly string[], summary: Summary): void {
  for (const text of documented.slice(0, 10)) console.log('after a crash (README):', text)
  console.log(JSON.stringify(summary))
}
